"""A subscriber's notices ("why did I (not) get this email?"), failed notices (dead
letters) and their retry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import structlog
from aiohttp import web

from notifyd.catalogue.events import Category
from notifyd.http.admin.records import Event, Notice
from notifyd.http.admin.subscribers import no_subscriber
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Problem
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, respond
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)


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


async def list_notices(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
    except ValueError:
        raise Problem(422, "invalid_request", "limit must be a number", {"limit": "int"}) from None
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        rows = await notice_store.of_account(conn, account_id, limit)
        # Beside the notices, the events that gave none, each with why.
        silent = await event_store.of_account(conn, account_id, limit, nothing_queued=True)
    if subscriber is None and not rows and not silent:
        raise no_subscriber(account_id)
    return respond(
        Notices(
            account_id=account_id,
            notices=[Notice.model_validate(row) for row in rows],
            events_without_notices=[Event.model_validate(row) for row in silent],
        )
    )


async def dead_letters(request: web.Request) -> web.Response:
    """Failed notices, newest first, with the last SMTP reply: retry them from here."""
    runtime = request.config_dict[RUNTIME]
    problems: dict[str, str] = {}
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
    except ValueError:
        problems["limit"] = "must be a whole number"
        limit = 50
    category = request.query.get("category")
    if category is not None and category not in {c.value for c in Category}:
        problems["category"] = f"unknown category; known: {', '.join(c.value for c in Category)}"
    before = None
    if "before" in request.query:
        try:
            before = datetime.fromisoformat(request.query["before"])
        except ValueError:
            problems["before"] = "must be an RFC 3339 time"
        else:
            if before.tzinfo is None:
                problems["before"] = "must carry a time zone offset"
    if problems:
        raise Problem(422, "invalid_request", "invalid query", problems)
    async with runtime.pool.acquire() as conn:
        rows = await notice_store.dead_letters(conn, limit, category, before)
    return respond(DeadLetters(dead_letters=[DeadLetter.model_validate(row) for row in rows]))


async def retry_notice(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    try:
        notice_id = UUID(request.match_info["notice_id"])
    except ValueError:
        raise Problem(404, "not_found", "no such notice") from None
    async with runtime.pool.acquire() as conn:
        state = await notice_store.retry_failed(conn, notice_id)
    if state is None:
        raise Problem(404, "not_found", "no such notice")
    if state != "queued":
        raise Problem(409, "conflict", f"only a failed notice can be retried; this one is {state}")
    runtime.on_queued()
    log.info("notice retried", token_name=request[TOKEN_NAME], notice_id=str(notice_id))
    return respond(Retried(notice_id=notice_id, state="queued"), status=202)
