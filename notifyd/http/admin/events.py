"""An account's events and one event, each with what was decided for it ("why did nothing
happen?")."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from aiohttp import web
from pydantic import Field

from notifyd.http.admin.records import Event, EventWithNotices
from notifyd.http.admin.subscribers import no_subscriber
from notifyd.http.errors import Problem
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, respond
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store


class Events(Reply):
    """An account's events, newest first, each with what was decided for it."""

    account_id: str
    subscriber: bool = Field(description="false: no account.created was received for it")
    events: list[Event]


async def list_events(request: web.Request) -> web.Response:
    """An account's events, newest first, each with what was decided for it: also for an
    account that is no subscriber (its events say "unknown account")."""
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    problems: dict[str, str] = {}
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
    except ValueError:
        problems["limit"] = "must be a whole number"
        limit = 50
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
        subscriber = await subscriber_store.get(conn, account_id)
        rows = await event_store.of_account(conn, account_id, limit, before)
    if subscriber is None and not rows:
        raise no_subscriber(account_id)
    return respond(
        Events(
            account_id=account_id,
            subscriber=subscriber is not None,
            events=[Event.model_validate(row) for row in rows],
        )
    )


async def get_event(request: web.Request) -> web.Response:
    """One event: what was decided for it and why, and its notices with theirs."""
    runtime = request.config_dict[RUNTIME]
    try:
        event_id = UUID(request.match_info["event_id"])
    except ValueError:
        raise Problem(404, "not_found", "no such event") from None
    async with runtime.pool.acquire() as conn:
        found = await event_store.decision(conn, event_id)
        notices = await notice_store.of_event(conn, event_id) if found else []
    if found is None:
        raise Problem(404, "not_found", "no such event")
    return respond(EventWithNotices.model_validate({**found, "notices": notices}))
