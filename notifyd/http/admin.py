"""/v1/admin/...: authenticated management of subscribers and their notices.

Every call needs `Authorization: Bearer <token>`; the config holds only SHA-256 digests
(`[admin.tokens] name = "sha256:..."`), compared in constant time, and every call is
logged with the token's name. A token removed from the config stops working at the next
reload.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import pydantic
import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, field_validator

from notifyd import unstorable
from notifyd.catalogue.events import Category
from notifyd.catalogue.fields import (
    DisplayText,
    EmailAddress,
    Identifier,
    Language,
    Money,
    Text,
    TimeZoneName,
)
from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.errors import error_response
from notifyd.http.imports import import_subscribers
from notifyd.http.runtime import RUNTIME
from notifyd.intake import consent
from notifyd.model import MODES, Preferences, Subscriber, parse_quiet_hours, parse_time_of_day
from notifyd.rules import preferences as preferences_module
from notifyd.rules.preferences import CONFIGURABLE
from notifyd.settings import DefaultsSettings
from notifyd.storage import addresses as address_store
from notifyd.storage import broadcasts as broadcast_store
from notifyd.storage import consent as consent_store
from notifyd.storage import db
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
BroadcastText = Annotated[str, Field(min_length=1, max_length=20000)]
TOKEN_NAME = web.RequestKey("admin_token", str)


def token_name(authorization: str, tokens: dict[str, bytes]) -> str | None:
    """The name of the configured token this header carries, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = hashlib.sha256(token.strip().encode()).digest()
    found = None
    # Every digest is compared, so the time taken says nothing about which one matched.
    for name, expected in tokens.items():
        if hmac.compare_digest(digest, expected):
            found = name
    return found


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    runtime = request.config_dict[RUNTIME]
    name = token_name(request.headers.get("Authorization", ""), dict(runtime.settings.admin.tokens))
    if name is None:
        log.warning("admin call refused", method=request.method, path=request.path)
        return error_response(
            401,
            "unauthorized",
            "a valid admin bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="notifyd-admin"'},
        )
    request[TOKEN_NAME] = name
    log.info("admin call", token_name=name, method=request.method, path=request.path)
    try:
        return await handler(request)
    except db.UNAVAILABLE as error:
        return error_response(
            503,
            "unavailable",
            f"the database cannot answer now ({type(error).__name__})",
            headers={"Retry-After": "5"},
        )


class SubscriberBody(BaseModel):
    """PUT /v1/admin/subscribers/{account_id}: the whole subscriber, replacing what was
    there. Every field must be given (null for none): a field left out is refused rather
    than cleared or kept, since either would silently be what some caller did not mean."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    email: EmailAddress
    username: Text | None
    name: DisplayText | None
    language: Language | None
    timezone: TimeZoneName | None


class SubscriberPatch(BaseModel):
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

    def apply(self, subscriber: Subscriber) -> Subscriber:
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        return replace(subscriber, **changes)


def _mode_category(value: str) -> str:
    if value in ("security", "service"):
        raise ValueError(f"{value} notices are mandatory and cannot be changed")
    if value not in CONFIGURABLE:
        raise ValueError(f"unknown category {value!r}; known: {', '.join(CONFIGURABLE)}")
    return value


def _mode(value: str) -> str:
    if value not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    return value


def _category(value: str) -> str:
    if value not in {c.value for c in Category}:
        raise ValueError(f"unknown category {value!r}")
    return value


# Dict keys and values each validated on their own, so every bad one is named at once
# (`modes.fax`, `addresses.pizza`), not the first a validator of the whole dict met.
ModeCategory = Annotated[str, pydantic.AfterValidator(_mode_category)]
Mode = Annotated[str, pydantic.AfterValidator(_mode)]
AddressCategory = Annotated[str, pydantic.AfterValidator(_category)]


def _one_or_several(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# One address, or a list of them (faxes to the office and to the scanner).
Addresses = Annotated[
    list[EmailAddress], pydantic.BeforeValidator(_one_or_several), Field(min_length=1)
]


class PreferencesPatch(BaseModel):
    """PATCH .../preferences: only the fields given change; null returns one to the default."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    modes: dict[ModeCategory, Mode | None] | None = None
    quiet_hours: str | None = None
    # Per category: one address, several, or null to follow the account's addresses again.
    addresses: dict[AddressCategory, Addresses | None] | None = None
    # Further addresses of the account (besides its own) that get every notice.
    extra_emails: list[EmailAddress] | None = None
    digest_time: str | None = None
    voicemail_audio: bool | None = None
    low_credit_threshold: Money | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None

    @field_validator("digest_time")
    @classmethod
    def _digest_time(cls, value: str | None) -> str | None:
        if value is not None:
            return parse_time_of_day(value).strftime("%H:%M")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)  # ValueError names what is wrong
        return value

    def apply(self, subscriber: Subscriber) -> Subscriber:
        given = self.model_fields_set
        current = subscriber.preferences
        modes = dict(current.modes)
        for category, mode in (self.modes or {}).items():
            if mode is None:
                modes.pop(category, None)
            else:
                modes[category] = mode
        addresses = dict(current.addresses)
        for category, address in (self.addresses or {}).items():
            if address is None:
                addresses.pop(category, None)
            else:
                addresses[category] = tuple(address)
        preferences = Preferences(
            modes=modes,
            quiet_hours=self.quiet_hours if "quiet_hours" in given else current.quiet_hours,
            addresses=addresses,
            extra_emails=(
                tuple(self.extra_emails or ()) if "extra_emails" in given else current.extra_emails
            ),
            digest_time=self.digest_time if "digest_time" in given else current.digest_time,
        )
        return replace(
            subscriber,
            preferences=preferences,
            voicemail_audio=(
                self.voicemail_audio
                if self.voicemail_audio is not None
                else subscriber.voicemail_audio
            ),
            low_credit_threshold=(
                Decimal(self.low_credit_threshold)
                if self.low_credit_threshold is not None
                else None
                if "low_credit_threshold" in given
                else subscriber.low_credit_threshold
            ),
            language=self.language if "language" in given else subscriber.language,
            timezone=self.timezone if "timezone" in given else subscriber.timezone,
        )


def _preferences_json(subscriber: Subscriber, defaults: DefaultsSettings) -> dict[str, Any]:
    return {
        "account_id": subscriber.account_id,
        "explicit": subscriber.preferences.to_json(),
        "effective": {
            **preferences_module.effective(subscriber.preferences, defaults),
            "language": subscriber.language or defaults.language,
            "timezone": subscriber.timezone or defaults.timezone,
            "addresses": {
                category.value: list(
                    preferences_module.addresses_for(
                        category, subscriber.preferences, subscriber.email
                    )
                )
                for category in Category
            },
            "voicemail_audio": subscriber.voicemail_audio,
            "low_credit_threshold": (
                str(subscriber.low_credit_threshold)
                if subscriber.low_credit_threshold is not None
                else None
            ),
        },
    }


def _subscriber_json(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "account_id": subscriber.account_id,
        "email": subscriber.email,
        "username": subscriber.username,
        "name": subscriber.name,
        "language": subscriber.language,
        "timezone": subscriber.timezone,
        "closed_at": subscriber.closed_at.isoformat() if subscriber.closed_at else None,
        "voicemail_audio": subscriber.voicemail_audio,
        "low_credit_threshold": (
            str(subscriber.low_credit_threshold)
            if subscriber.low_credit_threshold is not None
            else None
        ),
    }


def _no_subscriber(account_id: str) -> web.Response:
    return error_response(404, "not_found", f"no subscriber {account_id!r}")


async def _json_body(
    request: web.Request, model: type[M], detail: str = "the request body is invalid"
) -> M | web.Response:
    """The body validated by `model`, or the 400/422 answer that names every problem."""
    raw = await request.read()
    try:
        body = model.model_validate_json(raw)
    except pydantic.ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors()):
            refused = unstorable.in_refused_json(raw)
            if refused:
                return error_response(
                    422,
                    "invalid_request",
                    "a string in the body is not text (a lone surrogate)",
                    refused,
                )
            return error_response(400, "malformed_json", "the body is not valid JSON")
        fields: dict[str, str] = {}
        for item in error.errors(include_url=False):
            # A bad dict key is reported at `<key>.[key]`: it is named by the key alone.
            path = ".".join(str(part) for part in item["loc"] if part != "[key]") or "body"
            message = item["msg"].removeprefix("Value error, ")
            fields[path] = f"{fields[path]}; {message}" if path in fields else message
        return error_response(422, "invalid_request", detail, fields)
    refused = unstorable.found(body) if unstorable.may_hold_nul(raw) else {}
    if refused:
        return error_response(422, "invalid_request", detail, refused)
    return body


async def get_subscriber(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
    if subscriber is None:
        return _no_subscriber(account_id)
    return web.json_response(_subscriber_json(subscriber))


async def put_subscriber(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await _json_body(
        request,
        SubscriberBody,
        "PUT replaces the subscriber: give every field (null for none), "
        "or PATCH to change only some",
    )
    if isinstance(body, web.Response):
        return body
    async with runtime.pool.acquire() as conn, conn.transaction():
        current = await subscriber_store.get(conn, account_id, lock=True)
        wanted = Subscriber(
            account_id=account_id,
            email=body.email,
            username=body.username,
            name=body.name,
            language=body.language,
            timezone=body.timezone,
        )
        saved = await subscriber_store.replace(conn, wanted)
    log.info(
        "subscriber saved",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        created=current is None,
    )
    return web.json_response(_subscriber_json(saved), status=201 if current is None else 200)


async def patch_subscriber(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await _json_body(request, SubscriberPatch)
    if isinstance(body, web.Response):
        return body
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await subscriber_store.get(conn, account_id, lock=True)
        if subscriber is None:
            return _no_subscriber(account_id)
        saved = await subscriber_store.replace(conn, body.apply(subscriber))
    log.info(
        "subscriber changed",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        fields=sorted(body.model_fields_set),
    )
    return web.json_response(_subscriber_json(saved))


async def get_preferences(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
    if subscriber is None:
        return _no_subscriber(account_id)
    return web.json_response(_preferences_json(subscriber, runtime.settings.defaults))


async def patch_preferences(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await _json_body(request, PreferencesPatch)
    if isinstance(body, web.Response):
        return body
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await subscriber_store.get(conn, account_id, lock=True)
        if subscriber is None:
            return _no_subscriber(account_id)
        saved = await subscriber_store.save_preferences(conn, body.apply(subscriber))
    log.info(
        "preferences changed",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        fields=sorted(body.model_fields_set),
    )
    return web.json_response(_preferences_json(saved, runtime.settings.defaults))


class ConsentBody(BaseModel):
    """POST .../consent: one grant or withdrawal, as the subscriber gave it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # Strict: consent is a yes or no, never "yes" or 1 read as true.
    marketing: StrictBool
    source: Identifier
    wording_version: Identifier


async def _consent_state(conn: Conn, subscriber: Subscriber) -> dict[str, Any]:
    addresses = preferences_module.addresses_for(
        Category.MARKETING, subscriber.preferences, subscriber.email
    )
    consented = await consent_store.has_consent(conn, subscriber.account_id)
    suppressed = [a for a in addresses if await consent_store.is_suppressed(conn, a)]
    return {
        "consent": consented,
        # Some marketing address of the account unsubscribed (it stays off the list).
        "suppressed": bool(suppressed),
        "sendable": consented and len(suppressed) < len(addresses),
    }


async def get_consent(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        if subscriber is None:
            return _no_subscriber(account_id)
        state = await _consent_state(conn, subscriber)
        history = await consent_store.history(conn, account_id)
    return web.json_response({"account_id": account_id, "marketing": state, "history": history})


async def post_consent(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await _json_body(request, ConsentBody)
    if isinstance(body, web.Response):
        return body
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await subscriber_store.get(conn, account_id, lock=True)
        if subscriber is None:
            return _no_subscriber(account_id)
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
    log.info(
        "consent recorded",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        granted=body.marketing,
        source=body.source,
    )
    return web.json_response(
        {"account_id": account_id, "event": event, "marketing": state}, status=201
    )


class BroadcastBody(BaseModel):
    """POST /v1/admin/broadcasts: a mandatory notice to every open account, or an offer to
    the subscribers who consented and did not unsubscribe."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["notice.policy_changed", "notice.service", "marketing.offer"]
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


def _broadcast_id(request: web.Request) -> UUID | None:
    try:
        return UUID(request.match_info["broadcast_id"])
    except ValueError:
        return None


async def create_broadcast(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    body = await _json_body(request, BroadcastBody)
    if isinstance(body, web.Response):
        return body
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
    log.info("broadcast created", token_name=request[TOKEN_NAME], broadcast_id=str(broadcast_id))
    return web.json_response(created, status=202)


async def get_broadcast(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    broadcast_id = _broadcast_id(request)
    found = None
    if broadcast_id is not None:
        async with runtime.pool.acquire() as conn:
            found = await broadcast_store.get(conn, broadcast_id)
    if found is None:
        return error_response(404, "not_found", "no such broadcast")
    return web.json_response(found)


async def cancel_broadcast(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    broadcast_id = _broadcast_id(request)
    if broadcast_id is None:
        return error_response(404, "not_found", "no such broadcast")
    async with runtime.pool.acquire() as conn, conn.transaction():
        cancelled, withdrawn = await broadcast_store.cancel(conn, broadcast_id)
        found = await broadcast_store.get(conn, broadcast_id)
    if found is None:
        return error_response(404, "not_found", "no such broadcast")
    if not cancelled:
        return error_response(409, "conflict", f"the broadcast is already {found['state']}")
    log.info(
        "broadcast cancelled",
        token_name=request[TOKEN_NAME],
        broadcast_id=str(broadcast_id),
        notices_withdrawn=withdrawn,
    )
    return web.json_response({**found, "notices_withdrawn": withdrawn})


async def list_notices(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
    except ValueError:
        return error_response(422, "invalid_request", "limit must be a number", {"limit": "int"})
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        rows = await notice_store.of_account(conn, account_id, limit)
        # Beside the notices, the events that gave none, each with why.
        silent = await event_store.of_account(conn, account_id, limit, nothing_queued=True)
    if subscriber is None and not rows and not silent:
        return _no_subscriber(account_id)
    return web.json_response(
        {"account_id": account_id, "notices": rows, "events_without_notices": silent}
    )


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
        return error_response(422, "invalid_request", "invalid query", problems)
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        rows = await event_store.of_account(conn, account_id, limit, before)
    if subscriber is None and not rows:
        return _no_subscriber(account_id)
    return web.json_response(
        {"account_id": account_id, "subscriber": subscriber is not None, "events": rows}
    )


async def get_event(request: web.Request) -> web.Response:
    """One event: what was decided for it and why, and its notices with theirs."""
    runtime = request.config_dict[RUNTIME]
    try:
        event_id = UUID(request.match_info["event_id"])
    except ValueError:
        return error_response(404, "not_found", "no such event")
    async with runtime.pool.acquire() as conn:
        found = await event_store.decision(conn, event_id)
        notices = await notice_store.of_event(conn, event_id) if found else []
    if found is None:
        return error_response(404, "not_found", "no such event")
    return web.json_response({**found, "notices": notices})


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
        return error_response(422, "invalid_request", "invalid query", problems)
    async with runtime.pool.acquire() as conn:
        rows = await notice_store.dead_letters(conn, limit, category, before)
    return web.json_response({"dead_letters": rows})


async def list_undeliverable(request: web.Request) -> web.Response:
    """Addresses marked undeliverable after [delivery] bounce_limit hard bounces."""
    runtime = request.config_dict[RUNTIME]
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), 1000)
    except ValueError:
        return error_response(422, "invalid_request", "invalid query", {"limit": "int"})
    async with runtime.pool.acquire() as conn:
        rows = await address_store.list_undeliverable(conn, limit)
    return web.json_response({"undeliverable": rows})


async def clear_undeliverable(request: web.Request) -> web.Response:
    """The mailbox works again (the subscriber says so): forget its bounces."""
    runtime = request.config_dict[RUNTIME]
    address = request.match_info["address"]
    async with runtime.pool.acquire() as conn:
        cleared = await address_store.clear(conn, address)
    if not cleared:
        return error_response(404, "not_found", "no bounce record for this address")
    log.info("undeliverable address cleared", token_name=request[TOKEN_NAME])
    return web.Response(status=204)


async def retry_notice(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    try:
        notice_id = UUID(request.match_info["notice_id"])
    except ValueError:
        return error_response(404, "not_found", "no such notice")
    async with runtime.pool.acquire() as conn:
        state = await notice_store.retry_failed(conn, notice_id)
    if state is None:
        return error_response(404, "not_found", "no such notice")
    if state != "queued":
        return error_response(
            409, "conflict", f"only a failed notice can be retried; this one is {state}"
        )
    runtime.on_queued()
    log.info("notice retried", token_name=request[TOKEN_NAME], notice_id=str(notice_id))
    return web.json_response({"notice_id": str(notice_id), "state": "queued"}, status=202)


def create_admin_app() -> web.Application:
    admin = web.Application(middlewares=[require_token])
    # Registered before /subscribers/{account_id}, so "import" is never taken for an id.
    admin.router.add_post("/subscribers/import", import_subscribers)
    admin.router.add_get("/subscribers/{account_id}", get_subscriber)
    admin.router.add_put("/subscribers/{account_id}", put_subscriber)
    admin.router.add_patch("/subscribers/{account_id}", patch_subscriber)
    admin.router.add_get("/subscribers/{account_id}/preferences", get_preferences)
    admin.router.add_patch("/subscribers/{account_id}/preferences", patch_preferences)
    admin.router.add_get("/subscribers/{account_id}/consent", get_consent)
    admin.router.add_post("/subscribers/{account_id}/consent", post_consent)
    admin.router.add_get("/subscribers/{account_id}/notices", list_notices)
    admin.router.add_get("/subscribers/{account_id}/events", list_events)
    admin.router.add_get("/events/{event_id}", get_event)
    admin.router.add_get("/dead-letters", dead_letters)
    admin.router.add_get("/undeliverable", list_undeliverable)
    admin.router.add_delete("/undeliverable/{address}", clear_undeliverable)
    admin.router.add_post("/notices/{notice_id}/retry", retry_notice)
    admin.router.add_post("/broadcasts", create_broadcast)
    admin.router.add_get("/broadcasts/{broadcast_id}", get_broadcast)
    admin.router.add_delete("/broadcasts/{broadcast_id}", cancel_broadcast)
    return admin
