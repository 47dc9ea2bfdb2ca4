"""The audit row of every admin call that changes data, written once for every route here,
so a route added later is audited without doing anything.

After tokens.py has let a call through, a call other than GET that succeeds (2xx), and a
GET whose route declares an action (an export: `action="subscriber.exported"`), is
recorded in the `audit` table (storage/audit.py): the token's name, the route's action
(`action=` where the route is declared, else "<METHOD> <route>"), the `account_id` of its
path if it has one, and what the handler added with `note()` (the names of the fields it
changed, counts, ids; never values). A handler that changed data and then answers with an
error (an import stopped at a bad line) calls `note()` too, and is recorded all the same.

The row is written after the handler's own transaction has committed, on another
connection: a crash between the two loses the row (the "admin call" log line remains), and
an audit row that cannot be written is logged as an error while the caller still gets the
answer of the change that was made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Problem
from notifyd.http.operations import operation_of
from notifyd.http.runtime import RUNTIME
from notifyd.storage import audit as audit_store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_NOTED = web.RequestKey("audit_noted", dict[str, Any])
_ACTION = web.RequestKey("audit_action", str)


def note(request: web.Request, action: str | None = None, **detail: Any) -> None:
    """Add to the audit row of this call: its detail (names, counts, ids: storage/audit.py
    refuses anything else), and an action more precise than the route's
    ("consent.withdrawn" for "consent.recorded")."""
    audit_store.checked(detail)  # refused here, in the handler that wrote it, not later
    request.setdefault(_NOTED, {}).update(detail)
    if action is not None:
        request[_ACTION] = action


def _audited(request: web.Request) -> bool:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        return True
    # A read is recorded only when its route names an action: an export is, a lookup not.
    found = operation_of(request)
    return request.method == "GET" and found is not None and found[1].action is not None


@web.middleware
async def record_changes(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _audited(request):
        return await handler(request)
    try:
        response = await handler(request)
    except Problem:
        if _NOTED in request:
            await _record(request)
        raise
    if response.status < 300 or _NOTED in request:
        await _record(request)
    return response


async def _record(request: web.Request) -> None:
    found = operation_of(request)
    if found is None:
        return
    route, operation = found
    action = request.get(_ACTION) or operation.action or f"{request.method} {route}"
    await audit_store.record_apart(
        request.config_dict[RUNTIME].pool,
        request[TOKEN_NAME],
        action,
        request.match_info.get("account_id"),
        request.get(_NOTED, {}),
    )
