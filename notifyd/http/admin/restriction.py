"""/v1/admin/subscribers/{account_id}/restriction: restriction of processing (SPEC §2), set
(PUT) or lifted (DELETE). While it is set, the account's events are stored but no notice
outside the mandatory categories is sent; lifting releases what is still within its
delivery lifetime. The work is intake/restriction.py's; the subscriber's GET
(subscribers.py) shows the flag."""

from __future__ import annotations

import structlog
from aiohttp import web
from pydantic import Field

from notifyd.http.admin.subscribers import no_subscriber
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, respond
from notifyd.intake import restriction

log = structlog.get_logger(__name__)

routes = Routes(admin=True)


class Restriction(Reply):
    """An account's restriction of processing after the call, and what it did."""

    account_id: str
    restricted: bool
    restricted_at: Timestamp | None = Field(description="Since when; null when not restricted")
    held: int = Field(description="Notices held (state 'restricted') by this call")
    released: int = Field(description="Held notices released by this call, within lifetime")
    cancelled: int = Field(description="Held notices cancelled by this call, past lifetime")


def _answer(done: restriction.Restriction) -> web.Response:
    return respond(
        Restriction(
            account_id=done.account_id,
            restricted=done.restricted_at is not None,
            restricted_at=done.restricted_at,
            held=done.held,
            released=done.released,
            cancelled=done.cancelled,
        )
    )


@routes.put(
    "/subscribers/{account_id}/restriction",
    "Restrict processing of an account",
    scope="privacy",
    action="subscriber.restricted",
    description="Its events are still stored; every notice outside the mandatory categories "
    "(security, service) is held, not sent and not cancelled, until the restriction is "
    "lifted. Setting it again keeps the time it was first set.",
    answers={200: Answer("Restricted", Restriction), 404: error("No such subscriber")},
)
async def put_restriction(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        done = await restriction.restrict(conn, account_id)
    if done is None:
        raise no_subscriber(account_id)
    log.info(
        "processing restricted",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        held=done.held,
    )
    return _answer(done)


@routes.delete(
    "/subscribers/{account_id}/restriction",
    "Lift the restriction of processing of an account",
    scope="privacy",
    action="subscriber.restriction_lifted",
    description="Held notices still within their category's delivery lifetime "
    "([delivery.lifetimes]) go on as they would have; those past it are cancelled, saying so.",
    answers={200: Answer("Not restricted", Restriction), 404: error("No such subscriber")},
)
async def delete_restriction(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        done = await restriction.lift(conn, account_id, runtime.settings.delivery)
    if done is None:
        raise no_subscriber(account_id)
    log.info(
        "restriction lifted",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        released=done.released,
        cancelled=done.cancelled,
    )
    return _answer(done)
