"""A subscriber's notices ("why did I (not) get this email?"), failed notices (dead
letters) and their retry."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import structlog
from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    WithJsonSchema,
    field_validator,
)

from notifyd.catalogue.events import Category
from notifyd.http.admin.paging import Before, BeforeId, Limit, clamped, needs_before
from notifyd.http.admin.recording import note
from notifyd.http.admin.records import Event, Notice
from notifyd.http.admin.subscribers import no_subscriber
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Problem
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import (
    Id,
    Reply,
    Timestamp,
    path_parameters,
    query_parameters,
    respond,
)
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)

routes = Routes(admin=True)
CATEGORIES = [category.value for category in Category]


def _known_category(value: str | None) -> str | None:
    if value is not None and value not in CATEGORIES:
        raise ValueError(f"unknown category; known: {', '.join(CATEGORIES)}")
    return value


class NoticesQuery(BaseModel):
    # Text that is no number is refused as "int", as this list always said.
    limit: Annotated[int, Field(ge=1, le=500), BeforeValidator(clamped(500, "int"))] = 50
    before: Before = Field(None, description="Only those created before this time (next page)")
    before_id: BeforeId = None
    _needs_before = field_validator("before_id")(needs_before)


class DeadLettersQuery(BaseModel):
    limit: Limit = 50
    category: Annotated[
        str | None,
        AfterValidator(_known_category),
        WithJsonSchema({"type": "string", "enum": CATEGORIES}),
    ] = None
    before: Before = Field(None, description="Only those failed before this time (next page)")
    before_id: BeforeId = None
    _needs_before = field_validator("before_id")(needs_before)


class NoticePath(BaseModel):
    notice_id: Id


class Notices(Reply):
    """A subscriber's recent notices, newest first, and the events that queued none."""

    account_id: str
    notices: list[Notice]
    events_without_notices: list[Event]


class DeadLetter(Reply):
    """A failed notice, with the last SMTP reply."""

    id: UUID
    account_id: str
    kind: str
    category: Category
    recipient: str
    attempts: int
    last_error: str | None
    smtp_reply: str | None
    created_at: Timestamp
    failed_at: Timestamp | None


class DeadLetters(Reply):
    dead_letters: list[DeadLetter]


class Retried(Reply):
    notice_id: UUID
    state: Literal["queued"]


@routes.get(
    "/subscribers/{account_id}/notices",
    "Recent notices of a subscriber, with state and reasons",
    scope="read",
    query_parameters=NoticesQuery,
    answers={
        200: Answer("Newest first", Notices),
        404: error("No such subscriber"),
        422: error("Bad limit"),
    },
)
async def list_notices(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    query = query_parameters(request, NoticesQuery, "limit must be a number")
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        rows = await notice_store.of_account(
            conn, account_id, query.limit, query.before, query.before_id
        )
        # Beside the notices, the events that gave none, each with why (received before
        # the page's time, on a next page).
        silent = await event_store.of_account(
            conn, account_id, query.limit, query.before, nothing_queued=True
        )
    if subscriber is None and not rows and not silent:
        raise no_subscriber(account_id)
    return respond(
        Notices(
            account_id=account_id,
            notices=[Notice.model_validate(row) for row in rows],
            events_without_notices=[Event.model_validate(row) for row in silent],
        )
    )


@routes.get(
    "/dead-letters",
    "Failed notices, newest first, with the last SMTP reply",
    scope="read",
    query_parameters=DeadLettersQuery,
    answers={
        200: Answer("Newest first", DeadLetters),
        422: error("Bad limit, category or time"),
    },
)
async def dead_letters(request: web.Request) -> web.Response:
    """Failed notices, newest first, with the last SMTP reply: retry them from here."""
    runtime = request.config_dict[RUNTIME]
    query = query_parameters(request, DeadLettersQuery)
    async with runtime.pool.acquire() as conn:
        rows = await notice_store.dead_letters(
            conn, query.limit, query.category, query.before, query.before_id
        )
    return respond(DeadLetters(dead_letters=[DeadLetter.model_validate(row) for row in rows]))


@routes.post(
    "/notices/{notice_id}/retry",
    "Queue a failed notice again",
    scope="subscribers",
    action="notice.retried",
    path_parameters=NoticePath,
    answers={
        202: Answer("Queued", Retried),
        404: error("No such notice"),
        409: error("The notice is not failed"),
    },
)
async def retry_notice(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    unknown = Problem(404, "not_found", "no such notice")
    notice_id = path_parameters(request, NoticePath, unknown).notice_id
    async with runtime.pool.acquire() as conn:
        state = await notice_store.retry_failed(conn, notice_id)
    if state is None:
        raise unknown
    if state != "queued":
        raise Problem(409, "conflict", f"only a failed notice can be retried; this one is {state}")
    runtime.on_queued()
    note(request, notice_id=str(notice_id))
    log.info("notice retried", token_name=request[TOKEN_NAME], notice_id=str(notice_id))
    return respond(Retried(notice_id=notice_id, state="queued"), status=202)
