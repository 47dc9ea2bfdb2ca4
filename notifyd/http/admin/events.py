"""An account's events and one event, each with what was decided for it ("why did nothing
happen?")."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from notifyd.http.admin.paging import Before, BeforeId, Limit, needs_before
from notifyd.http.admin.records import Event, EventWithNotices
from notifyd.http.admin.subscribers import no_subscriber
from notifyd.http.errors import Problem
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Id, Reply, path_parameters, query_parameters, respond
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store

routes = Routes(admin=True)


class EventsQuery(BaseModel):
    limit: Limit = 50
    before: Before = Field(None, description="Only those received before this time (next page)")
    before_id: BeforeId = None
    _needs_before = field_validator("before_id")(needs_before)


class EventPath(BaseModel):
    event_id: Id


class Events(Reply):
    """An account's events, newest first, each with what was decided for it."""

    account_id: str
    subscriber: bool = Field(description="false: no account.created was received for it")
    events: list[Event]


@routes.get(
    "/subscribers/{account_id}/events",
    "Recent events of an account (a subscriber or not), each with what was decided and why",
    scope="read",
    query_parameters=EventsQuery,
    answers={
        200: Answer("Newest first", Events),
        404: error("No subscriber and no events for this account"),
        422: error("Bad limit or before"),
    },
)
async def list_events(request: web.Request) -> web.Response:
    """An account's events, newest first, each with what was decided for it: also for an
    account that is no subscriber (its events say "unknown account")."""
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    query = query_parameters(request, EventsQuery)
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        rows = await event_store.of_account(
            conn, account_id, query.limit, query.before, before_id=query.before_id
        )
    if subscriber is None and not rows:
        raise no_subscriber(account_id)
    return respond(
        Events(
            account_id=account_id,
            subscriber=subscriber is not None,
            events=[Event.model_validate(row) for row in rows],
        )
    )


@routes.get(
    "/events/{event_id}",
    "One event: what was decided and why, and its notices",
    scope="read",
    path_parameters=EventPath,
    answers={200: Answer("The event", EventWithNotices), 404: error("No such event")},
)
async def get_event(request: web.Request) -> web.Response:
    """One event: what was decided for it and why, and its notices with theirs."""
    runtime = request.config_dict[RUNTIME]
    unknown = Problem(404, "not_found", "no such event")
    event_id = path_parameters(request, EventPath, unknown).event_id
    async with runtime.pool.acquire() as conn:
        found = await event_store.decision(conn, event_id)
        notices = await notice_store.of_event(conn, event_id) if found else []
    if found is None:
        raise unknown
    return respond(EventWithNotices.model_validate({**found, "notices": notices}))
