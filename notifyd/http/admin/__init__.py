"""/v1/admin/...: authenticated management of subscribers and their notices, one module per
resource. Every call needs an admin bearer token (`tokens`)."""

from __future__ import annotations

from aiohttp import web

from notifyd.http.admin import (
    broadcasts,
    consent,
    events,
    imports,
    notices,
    preferences,
    subscribers,
    undeliverable,
)
from notifyd.http.admin.tokens import require_token

# In this order: /subscribers/import is served before /subscribers/{account_id}, so that
# "import" is never taken for an account id.
RESOURCES = (imports, subscribers, preferences, consent, notices, events, undeliverable, broadcasts)


def create_admin_app() -> web.Application:
    admin = web.Application(middlewares=[require_token])
    for resource in RESOURCES:
        resource.routes.add_to(admin)
    return admin
