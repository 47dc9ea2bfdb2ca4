"""/v1/admin/...: authenticated management of subscribers and their notices, one module per
resource. Every call needs an admin bearer token granting the route's scope (`tokens`);
every change is written to the audit trail (`recording`), which `audit` serves."""

from __future__ import annotations

from aiohttp import web

from notifyd.http.admin import (
    audit,
    broadcasts,
    consent,
    events,
    imports,
    links,
    notices,
    preferences,
    privacy,
    restriction,
    subscribers,
    undeliverable,
)
from notifyd.http.admin.recording import record_changes
from notifyd.http.admin.tokens import require_token

# In this order: /subscribers/import is served before /subscribers/{account_id}, so that
# "import" is never taken for an account id.
RESOURCES = (
    imports,
    subscribers,
    preferences,
    consent,
    restriction,
    links,
    notices,
    events,
    undeliverable,
    broadcasts,
    audit,
    privacy,
)


def create_admin_app() -> web.Application:
    # The token and its scope first: a refused call changes nothing and records nothing.
    admin = web.Application(middlewares=[require_token, record_changes])
    for resource in RESOURCES:
        resource.routes.add_to(admin)
    return admin
