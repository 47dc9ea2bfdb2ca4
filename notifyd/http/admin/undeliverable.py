"""Addresses marked undeliverable after repeated hard bounces, and forgetting them."""

from __future__ import annotations

import structlog
from aiohttp import web

from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Problem
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, respond
from notifyd.storage import addresses as address_store

log = structlog.get_logger(__name__)


class UndeliverableAddress(Reply):
    address: str
    hard_bounces: int
    last_reply: str | None
    last_bounce_at: Timestamp | None
    undeliverable_at: Timestamp


class Undeliverable(Reply):
    """Addresses marked undeliverable, newest first."""

    undeliverable: list[UndeliverableAddress]


async def list_undeliverable(request: web.Request) -> web.Response:
    """Addresses marked undeliverable after [delivery] bounce_limit hard bounces."""
    runtime = request.config_dict[RUNTIME]
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
    except ValueError:
        raise Problem(422, "invalid_request", "invalid query", {"limit": "int"}) from None
    async with runtime.pool.acquire() as conn:
        rows = await address_store.list_undeliverable(conn, limit)
    return respond(
        Undeliverable(undeliverable=[UndeliverableAddress.model_validate(row) for row in rows])
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
