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


def create_admin_app() -> web.Application:
    admin = web.Application(middlewares=[require_token])
    # Registered before /subscribers/{account_id}, so "import" is never taken for an id.
    admin.router.add_post("/subscribers/import", imports.import_subscribers)
    admin.router.add_get("/subscribers/{account_id}", subscribers.get_subscriber)
    admin.router.add_put("/subscribers/{account_id}", subscribers.put_subscriber)
    admin.router.add_patch("/subscribers/{account_id}", subscribers.patch_subscriber)
    admin.router.add_get("/subscribers/{account_id}/preferences", preferences.get_preferences)
    admin.router.add_patch("/subscribers/{account_id}/preferences", preferences.patch_preferences)
    admin.router.add_get("/subscribers/{account_id}/consent", consent.get_consent)
    admin.router.add_post("/subscribers/{account_id}/consent", consent.post_consent)
    admin.router.add_get("/subscribers/{account_id}/notices", notices.list_notices)
    admin.router.add_get("/subscribers/{account_id}/events", events.list_events)
    admin.router.add_get("/events/{event_id}", events.get_event)
    admin.router.add_get("/dead-letters", notices.dead_letters)
    admin.router.add_get("/undeliverable", undeliverable.list_undeliverable)
    admin.router.add_delete("/undeliverable/{address}", undeliverable.clear_undeliverable)
    admin.router.add_post("/notices/{notice_id}/retry", notices.retry_notice)
    admin.router.add_post("/broadcasts", broadcasts.create_broadcast)
    admin.router.add_get("/broadcasts/{broadcast_id}", broadcasts.get_broadcast)
    admin.router.add_delete("/broadcasts/{broadcast_id}", broadcasts.cancel_broadcast)
    return admin
