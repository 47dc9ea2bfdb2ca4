"""Addresses marked undeliverable after repeated hard bounces, and forgetting them."""

from __future__ import annotations

from typing import Annotated

import structlog
from aiohttp import web
from pydantic import BaseModel, BeforeValidator, Field

from notifyd.http.admin.paging import clamped
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Problem
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, query_parameters, respond
from notifyd.storage import addresses as address_store

log = structlog.get_logger(__name__)

routes = Routes(admin=True)


class UndeliverableQuery(BaseModel):
    # Text that is no number is refused as "int", as this list always said.
    limit: Annotated[int, Field(ge=1, le=1000), BeforeValidator(clamped(1000, "int"))] = 100


class UndeliverableAddress(Reply):
    address: str
    hard_bounces: int
    last_reply: str | None
    last_bounce_at: Timestamp | None
    undeliverable_at: Timestamp


class Undeliverable(Reply):
    """Addresses marked undeliverable, newest first."""

    undeliverable: list[UndeliverableAddress]


@routes.get(
    "/undeliverable",
    "Addresses marked undeliverable after repeated hard bounces",
    scope="read",
    query_parameters=UndeliverableQuery,
    answers={200: Answer("Newest first", Undeliverable), 422: error("Bad limit")},
)
async def list_undeliverable(request: web.Request) -> web.Response:
    """Addresses marked undeliverable after [delivery] bounce_limit hard bounces."""
    runtime = request.config_dict[RUNTIME]
    limit = query_parameters(request, UndeliverableQuery).limit
    async with runtime.pool.acquire() as conn:
        rows = await address_store.list_undeliverable(conn, limit)
    return respond(
        Undeliverable(undeliverable=[UndeliverableAddress.model_validate(row) for row in rows])
    )


@routes.delete(
    "/undeliverable/{address}",
    "Forget an address's bounces (the mailbox works again)",
    scope="subscribers",
    action="undeliverable.cleared",
    answers={
        204: Answer("Forgotten", media_type=None),
        404: error("No bounce record for this address"),
    },
)
async def clear_undeliverable(request: web.Request) -> web.Response:
    """The mailbox works again (the subscriber says so): forget its bounces."""
    runtime = request.config_dict[RUNTIME]
    address = request.match_info["address"]
    async with runtime.pool.acquire() as conn:
        cleared = await address_store.clear(conn, address)
    if not cleared:
        raise Problem(404, "not_found", "no bounce record for this address")
    log.info("undeliverable address cleared", token_name=request[TOKEN_NAME])
    return web.Response(status=204)
