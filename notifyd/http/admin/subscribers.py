"""/v1/admin/subscribers/{account_id}: read, create or replace (PUT), change (PATCH). An
address erased before goes back on the suppression list when given again; the erasure
itself (DELETE) and the export are in privacy.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import pydantic
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from notifyd import model
from notifyd.catalogue.fields import DisplayText, EmailAddress, Language, Text, TimeZoneName
from notifyd.http.admin.recording import note
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Problem
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import DecimalText, Reply, Timestamp, json_body, respond
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)

routes = Routes(admin=True)


class Shown(BaseModel):
    """The fields a subscriber's answer shows that PUT and PATCH do not set: taken when they
    say what is stored, so that the answer of GET, corrected, can be sent back whole."""

    account_id: str | None = None
    closed_at: datetime | None = None
    voicemail_audio: bool | None = None
    low_credit_threshold: Decimal | None = None
    restricted_at: datetime | None = None


# Where each of them is changed, said when a body gives it another value.
_SET_ELSEWHERE = {
    "closed_at": "is set by the account.closed and account.created webhooks",
    "voicemail_audio": "is a preference: change it with PATCH .../preferences",
    "low_credit_threshold": "is a preference: change it with PATCH .../preferences",
    "restricted_at": "is set by PUT and DELETE .../restriction",
}


def set_elsewhere(body: Shown, account_id: str, stored: model.Subscriber | None) -> None:
    """A 422 naming each shown field the body gives a value other than the stored one."""
    stored = stored or model.Subscriber(account_id=account_id, email="")
    fields = {
        name: _SET_ELSEWHERE.get(
            name, f"is the account of the path, {account_id}: leave it out or give that"
        )
        for name in sorted(body.model_fields_set & Shown.model_fields.keys())
        if getattr(body, name) != getattr(stored, name)
    }
    if fields:
        raise Problem(422, "invalid_request", "these fields are not changed here", fields)


class SubscriberBody(Shown):
    """PUT /v1/admin/subscribers/{account_id}: the whole subscriber, replacing what was
    there. Every field must be given (null for none): a field left out is refused rather
    than cleared or kept, since either would silently be what some caller did not mean."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailAddress
    username: Text | None
    name: DisplayText | None
    language: Language | None
    timezone: TimeZoneName | None


class SubscriberPatch(Shown):
    """PATCH /v1/admin/subscribers/{account_id}: only the fields given change; null clears
    one (not the email: every subscriber has an address)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # None stands for "not given" (apply() reads only the fields given); a null given is
    # refused below, and the schema shows the field as a string only.
    email: Annotated[
        EmailAddress | None,
        pydantic.WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
    ] = None
    username: Text | None = None
    name: DisplayText | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None

    @field_validator("email")
    @classmethod
    def _email_stays(cls, value: str | None) -> str | None:
        # Runs only for a value given: a missing email keeps the one stored.
        if value is None:
            raise ValueError("cannot be null: every subscriber has an address")
        return value

    def apply(self, subscriber: model.Subscriber) -> model.Subscriber:
        changes = {name: getattr(self, name) for name in self.model_fields_set & set(DETAILS)}
        return replace(subscriber, **changes)


class Subscriber(Reply):
    """A subscriber as the admin reads it (its preferences and consent have their own)."""

    account_id: str
    email: str
    username: str | None
    name: str | None
    language: Language | None
    timezone: str | None
    closed_at: Timestamp | None
    voicemail_audio: bool
    low_credit_threshold: DecimalText | None
    restricted_at: Timestamp | None = Field(
        description="Processing restricted since then (PUT .../restriction); null: not restricted"
    )


# The subscriber's own fields, as PUT and PATCH change them.
DETAILS = ("email", "username", "name", "language", "timezone")


def changed_fields(before: model.Subscriber | None, after: model.Subscriber) -> list[str]:
    """The names of the details that differ (every one given, for a new subscriber): what
    the audit trail says of a correction, never the values."""
    return [
        name for name in DETAILS if before is None or getattr(before, name) != getattr(after, name)
    ]


def no_subscriber(account_id: str) -> Problem:
    """The answer to a call about an account that is no subscriber."""
    return Problem(404, "not_found", f"no subscriber {account_id!r}")


async def existing_subscriber(
    conn: Conn, account_id: str, *, lock: bool = False
) -> model.Subscriber:
    """The subscriber; else the call is answered 404 (`no_subscriber`)."""
    subscriber = await subscriber_store.get(conn, account_id, lock=lock)
    if subscriber is None:
        raise no_subscriber(account_id)
    return subscriber


@routes.get(
    "/subscribers/{account_id}",
    "A subscriber",
    scope="read",
    answers={200: Answer("The subscriber", Subscriber), 404: error("No such subscriber")},
)
async def get_subscriber(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        subscriber = await existing_subscriber(conn, account_id)
    return respond(Subscriber.model_validate(subscriber))


@routes.put(
    "/subscribers/{account_id}",
    "Create or replace a subscriber",
    scope="subscribers",
    action="subscriber.saved",
    description="The whole subscriber: every field must be given (null for none) and replaces "
    "the stored one. To change only some fields, use PATCH. Preferences, consent and closing "
    "are not changed.",
    body=SubscriberBody,
    answers={
        200: Answer("Replaced", Subscriber),
        201: Answer("Created", Subscriber),
        422: error("Invalid or missing fields; `fields` names each"),
    },
)
async def put_subscriber(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await json_body(
        request,
        SubscriberBody,
        "PUT replaces the subscriber: give every field (null for none), "
        "or PATCH to change only some",
    )
    async with runtime.pool.acquire() as conn, conn.transaction():
        current = await subscriber_store.get(conn, account_id, lock=True)
        set_elsewhere(body, account_id, current)
        wanted = model.Subscriber(
            account_id=account_id,
            email=body.email,
            username=body.username,
            name=body.name,
            language=body.language,
            timezone=body.timezone,
        )
        # An address erased before stays off marketing (storage/subscribers.py).
        saved = await subscriber_store.replace(
            conn, wanted, before=current, erasure_key=runtime.erasure_key
        )
    note(request, created=current is None, fields=changed_fields(current, saved))
    log.info(
        "subscriber saved",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        created=current is None,
    )
    return respond(Subscriber.model_validate(saved), status=201 if current is None else 200)


@routes.patch(
    "/subscribers/{account_id}",
    "Change some fields of a subscriber",
    scope="subscribers",
    action="subscriber.changed",
    description="Only the fields given change; null clears one (not email). Preferences, "
    "consent and closing are not changed.",
    body=SubscriberPatch,
    answers={
        200: Answer("Changed", Subscriber),
        404: error("No such subscriber"),
        422: error("Invalid fields; `fields` names each"),
    },
)
async def patch_subscriber(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await json_body(request, SubscriberPatch)
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await existing_subscriber(conn, account_id, lock=True)
        set_elsewhere(body, account_id, subscriber)
        saved = await subscriber_store.replace(
            conn, body.apply(subscriber), before=subscriber, erasure_key=runtime.erasure_key
        )
    note(request, fields=changed_fields(subscriber, saved))
    log.info(
        "subscriber changed",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        fields=sorted(body.model_fields_set & set(DETAILS)),
    )
    return respond(Subscriber.model_validate(saved))
