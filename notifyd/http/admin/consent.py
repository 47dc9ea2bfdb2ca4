"""/v1/admin/subscribers/{account_id}/consent: marketing consent now, its history, and a
grant or withdrawal recorded."""

from __future__ import annotations

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from notifyd.catalogue.events import Category
from notifyd.catalogue.fields import Identifier
from notifyd.http.admin.recording import note
from notifyd.http.admin.subscribers import existing_subscriber
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, json_body, respond
from notifyd.intake import consent
from notifyd.model import Subscriber
from notifyd.rules import preferences as preferences_module
from notifyd.storage import consent as consent_store
from notifyd.storage.audit import consent_action
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)

routes = Routes(admin=True)


class ConsentBody(BaseModel):
    """POST .../consent: one grant or withdrawal, as the subscriber gave it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # Strict: consent is a yes or no, never "yes" or 1 read as true.
    marketing: StrictBool
    source: Identifier
    wording_version: Identifier


class MarketingState(Reply):
    consent: bool = Field(description="The latest choice recorded is a grant")
    suppressed: bool = Field(
        description="Some marketing address of the account unsubscribed (it stays off the list)"
    )
    sendable: bool = Field(description="Offers reach at least one of its addresses")


class ConsentRecord(Reply):
    """One grant or withdrawal, as it was recorded."""

    id: int
    account_id: str
    purpose: str
    granted: bool
    source: str
    wording_version: str
    recorded_by: str | None = Field(description="The admin token's name; null if not an admin")
    at: Timestamp


class Consent(Reply):
    """Marketing consent now, and every grant and withdrawal, newest first."""

    account_id: str
    marketing: MarketingState
    history: list[ConsentRecord]


class ConsentRecorded(Reply):
    account_id: str
    event: ConsentRecord
    marketing: MarketingState


async def _consent_state(conn: Conn, subscriber: Subscriber) -> MarketingState:
    addresses = preferences_module.addresses_for(
        Category.MARKETING, subscriber.preferences, subscriber.email
    )
    consented = await consent_store.has_consent(conn, subscriber.account_id)
    suppressed = [a for a in addresses if await consent_store.is_suppressed(conn, a)]
    return MarketingState(
        consent=consented,
        suppressed=bool(suppressed),
        sendable=consented and len(suppressed) < len(addresses),
    )


@routes.get(
    "/subscribers/{account_id}/consent",
    "Marketing consent now, and its whole history",
    scope="read",
    answers={200: Answer("Consent state and history", Consent), 404: error("No such subscriber")},
)
async def get_consent(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        subscriber = await existing_subscriber(conn, account_id)
        state = await _consent_state(conn, subscriber)
        history = await consent_store.history(conn, account_id)
    return respond(
        Consent(
            account_id=account_id,
            marketing=state,
            history=[ConsentRecord.model_validate(row) for row in history],
        )
    )


@routes.post(
    "/subscribers/{account_id}/consent",
    "Record a grant or withdrawal of marketing consent",
    scope="subscribers",
    action="consent.recorded",
    description="A withdrawal puts the address on the suppression list; only a grant with "
    "source 'subscriber' takes it off.",
    body=ConsentBody,
    answers={
        201: Answer("Recorded", ConsentRecorded),
        404: error("No such subscriber"),
        422: error("Invalid fields"),
    },
)
async def post_consent(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await json_body(request, ConsentBody)
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await existing_subscriber(conn, account_id, lock=True)
        event = await consent.decide(
            conn,
            account_id,
            [
                subscriber.email,
                *preferences_module.addresses_for(
                    Category.MARKETING, subscriber.preferences, subscriber.email
                ),
            ],
            granted=body.marketing,
            source=body.source,
            wording_version=body.wording_version,
            recorded_by=request[TOKEN_NAME],
        )
        state = await _consent_state(conn, subscriber)
    note(request, action=consent_action(body.marketing))
    log.info(
        "consent recorded",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        granted=body.marketing,
        source=body.source,
    )
    recorded = ConsentRecord.model_validate(event)
    return respond(
        ConsentRecorded(account_id=account_id, event=recorded, marketing=state), status=201
    )
