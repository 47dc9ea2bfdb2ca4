"""/v1/admin/broadcasts: a notice to every open account (or an offer to those who
consented), its progress, and its cancelling."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from notifyd.catalogue.fields import DisplayText, Language
from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.admin.recording import note
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Problem
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import (
    Id,
    Reply,
    Timestamp,
    json_body,
    path_parameters,
    respond,
)
from notifyd.storage import broadcasts as broadcast_store

log = structlog.get_logger(__name__)

routes = Routes(admin=True)

BroadcastText = Annotated[str, Field(min_length=1, max_length=20000)]


class BroadcastBody(BaseModel):
    """POST /v1/admin/broadcasts: a mandatory notice to every open account, or an offer to
    the subscribers who consented and did not unsubscribe."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: broadcast_store.BroadcastKind
    subject: dict[Language, DisplayText]
    body: dict[Language, BroadcastText]
    starts_at: AwareDatetime | None = None

    @field_validator("subject", "body")
    @classmethod
    def _every_language(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [language for language in LANGUAGES if language not in value]
        if missing:
            raise ValueError(f"give the text in every language; missing: {', '.join(missing)}")
        return value


class Broadcast(Reply):
    """A broadcast and its progress."""

    id: UUID
    kind: broadcast_store.BroadcastKind
    state: broadcast_store.BroadcastState
    starts_at: Timestamp
    queued: int = Field(description="Notices queued so far")
    sent: int = Field(description="Notices sent so far")
    created_by: str | None = Field(description="The admin token's name")
    created_at: Timestamp
    finished_at: Timestamp | None
    subject: dict[str, str] = Field(description="Per language")


class CancelledBroadcast(Broadcast):
    notices_withdrawn: int = Field(description="Notices not yet sent, now cancelled")


class BroadcastPath(BaseModel):
    broadcast_id: Id


def _no_such_broadcast() -> Problem:
    return Problem(404, "not_found", "no such broadcast")


@routes.post(
    "/broadcasts",
    "Send a mandatory notice to every open account, or an offer to those who consented",
    scope="broadcasts",
    action="broadcast.created",
    description="Fanned out in batches in the background; resumes after a restart; progress "
    "via GET, cancel via DELETE.",
    body=BroadcastBody,
    answers={
        202: Answer("Accepted; fan-out started or scheduled", Broadcast),
        422: error("Invalid fields"),
    },
)
async def create_broadcast(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    body = await json_body(request, BroadcastBody)
    starts_at = body.starts_at or runtime.clock()
    async with runtime.pool.acquire() as conn, conn.transaction():
        broadcast_id = await broadcast_store.create(
            conn,
            body.kind,
            {"subject": body.subject, "body": body.body},
            starts_at,
            request[TOKEN_NAME],
        )
        created = await broadcast_store.get(conn, broadcast_id)
    runtime.on_broadcast()
    note(request, broadcast_id=str(broadcast_id), kind=body.kind)
    log.info("broadcast created", token_name=request[TOKEN_NAME], broadcast_id=str(broadcast_id))
    return respond(Broadcast.model_validate(created), status=202)


@routes.get(
    "/broadcasts/{broadcast_id}",
    "A broadcast's progress",
    scope="read",
    path_parameters=BroadcastPath,
    answers={200: Answer("Progress", Broadcast), 404: error("No such broadcast")},
)
async def get_broadcast(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    broadcast_id = path_parameters(request, BroadcastPath, _no_such_broadcast()).broadcast_id
    async with runtime.pool.acquire() as conn:
        found = await broadcast_store.get(conn, broadcast_id)
    if found is None:
        raise _no_such_broadcast()
    return respond(Broadcast.model_validate(found))


@routes.delete(
    "/broadcasts/{broadcast_id}",
    "Cancel a broadcast; notices not yet sent are withdrawn",
    scope="broadcasts",
    action="broadcast.cancelled",
    path_parameters=BroadcastPath,
    answers={
        200: Answer("Cancelled", CancelledBroadcast),
        404: error("No such broadcast"),
        409: error("Already done or cancelled"),
    },
)
async def cancel_broadcast(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    broadcast_id = path_parameters(request, BroadcastPath, _no_such_broadcast()).broadcast_id
    async with runtime.pool.acquire() as conn, conn.transaction():
        cancelled, withdrawn = await broadcast_store.cancel(conn, broadcast_id)
        found = await broadcast_store.get(conn, broadcast_id)
    if found is None:
        raise _no_such_broadcast()
    if not cancelled:
        raise Problem(409, "conflict", f"the broadcast is already {found['state']}")
    note(request, broadcast_id=str(broadcast_id), notices_withdrawn=withdrawn)
    log.info(
        "broadcast cancelled",
        token_name=request[TOKEN_NAME],
        broadcast_id=str(broadcast_id),
        notices_withdrawn=withdrawn,
    )
    return respond(CancelledBroadcast.model_validate({**found, "notices_withdrawn": withdrawn}))
