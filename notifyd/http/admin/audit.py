"""GET /v1/admin/audit: the audit trail (storage/audit.py), newest first, by account and by
action. Its rows are written by recording.py (admin calls), the subscriber's pages and the
daemon's reload; none holds personal data, so the `read` scope reads them."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field

from notifyd.catalogue.fields import Identifier
from notifyd.http.admin.paging import Before, Limit
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, query_parameters, respond
from notifyd.storage import audit as audit_store

routes = Routes(admin=True)


class AuditQuery(BaseModel):
    limit: Limit = 50
    before: Before = Field(None, description="Only those recorded before this time (next page)")
    account_id: Annotated[Identifier | None, Field(description="Only this account's")] = None
    action: Annotated[
        Identifier | None, Field(description='Only this action, e.g. "subscriber.changed"')
    ] = None


class AuditEntry(Reply):
    """One change: when, who, what, about which account."""

    id: int
    at: Timestamp
    actor: str = Field(description='The admin token\'s name, "subscriber link", "config" or "cli"')
    action: str = Field(description='e.g. "subscriber.changed", "consent.withdrawn"')
    account_id: str | None
    detail: dict[str, Any] = Field(
        description="Names of the fields changed, counts, ids: never personal data"
    )


class AuditTrail(Reply):
    """Newest first; the next page: `before` = the last entry's `at`."""

    entries: list[AuditEntry]


@routes.get(
    "/audit",
    "The audit trail: who changed what, newest first",
    scope="read",
    query_parameters=AuditQuery,
    answers={200: Answer("Newest first", AuditTrail), 422: error("Bad limit or before")},
)
async def list_audit(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    query = query_parameters(request, AuditQuery)
    async with runtime.pool.acquire() as conn:
        rows = await audit_store.page(
            conn,
            query.limit,
            account_id=query.account_id,
            action=query.action,
            before=query.before,
        )
    return respond(AuditTrail(entries=[AuditEntry.model_validate(row) for row in rows]))
