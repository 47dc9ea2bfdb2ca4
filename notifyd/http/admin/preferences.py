"""/v1/admin/subscribers/{account_id}/preferences: the explicit choices and what applies."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Any

import pydantic
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from notifyd import model
from notifyd.catalogue.events import Category, canonical_category
from notifyd.catalogue.fields import EmailAddress, Language, Money, TimeZoneName
from notifyd.http.admin.recording import note
from notifyd.http.admin.subscribers import existing_subscriber
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import DecimalText, Reply, absent, json_body, respond
from notifyd.model import MODES, parse_quiet_hours, parse_time_of_day
from notifyd.rules import preferences as preferences_module
from notifyd.rules.preferences import CONFIGURABLE
from notifyd.settings import DefaultsSettings
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)

routes = Routes(admin=True)


def _mode_category(value: str) -> str:
    value = canonical_category(value)
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
    value = canonical_category(value)
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

    def apply(self, subscriber: model.Subscriber) -> model.Subscriber:
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
        preferences = model.Preferences(
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


ModeName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(MODES)})]


def _chosen() -> Any:
    return Field(default=None, exclude_if=absent)


class ExplicitPreferences(Reply):
    """Only what was chosen: a field never chosen follows the defaults, and is left out."""

    modes: dict[str, ModeName] | None = _chosen()
    quiet_hours: str | None = _chosen()
    addresses: dict[str, list[str]] | None = _chosen()
    extra_emails: list[str] | None = _chosen()
    digest_time: str | None = _chosen()


class EffectivePreferences(Reply):
    """What applies now, the current defaults included."""

    modes: dict[str, ModeName]
    quiet_hours: str = Field(description='"HH:MM-HH:MM", or "" for none')
    digest_time: str = Field(description="HH:MM, the local time of the daily digest")
    language: Language
    timezone: str
    addresses: dict[str, list[str]] = Field(description="Where each category's notices go")
    voicemail_audio: bool
    low_credit_threshold: DecimalText | None


class Preferences(Reply):
    """A subscriber's explicit choices, and what applies now."""

    account_id: str
    explicit: ExplicitPreferences
    effective: EffectivePreferences

    @classmethod
    def of(cls, subscriber: model.Subscriber, defaults: DefaultsSettings) -> Preferences:
        chosen = subscriber.preferences
        effective = {
            **preferences_module.effective(chosen, defaults),
            "language": subscriber.language or defaults.language,
            "timezone": subscriber.timezone or defaults.timezone,
            "addresses": {
                category.value: list(
                    preferences_module.addresses_for(category, chosen, subscriber.email)
                )
                for category in Category
            },
            "voicemail_audio": subscriber.voicemail_audio,
            "low_credit_threshold": subscriber.low_credit_threshold,
        }
        return cls(
            account_id=subscriber.account_id,
            explicit=ExplicitPreferences.model_validate(chosen.to_json()),
            effective=EffectivePreferences.model_validate(effective),
        )


@routes.get(
    "/subscribers/{account_id}/preferences",
    "A subscriber's explicit choices and what applies now",
    scope="read",
    answers={
        200: Answer("Explicit and effective preferences", Preferences),
        404: error("No such subscriber"),
    },
)
async def get_preferences(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        subscriber = await existing_subscriber(conn, account_id)
    return respond(Preferences.of(subscriber, runtime.settings.defaults))


@routes.patch(
    "/subscribers/{account_id}/preferences",
    "Change some preferences; null returns a field to the default",
    scope="subscribers",
    action="preferences.changed",
    body=PreferencesPatch,
    answers={
        200: Answer("Explicit and effective preferences", Preferences),
        404: error("No such subscriber"),
        422: error(
            "Invalid fields, each named in `fields` (`modes.security`: mandatory categories "
            "cannot change)"
        ),
    },
)
async def patch_preferences(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    body = await json_body(request, PreferencesPatch)
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await existing_subscriber(conn, account_id, lock=True)
        saved = await subscriber_store.save_preferences(
            conn, body.apply(subscriber), before=subscriber, erasure_key=runtime.erasure_key
        )
    note(request, fields=sorted(body.model_fields_set))
    log.info(
        "preferences changed",
        token_name=request[TOKEN_NAME],
        account_id=account_id,
        fields=sorted(body.model_fields_set),
    )
    return respond(Preferences.of(saved, runtime.settings.defaults))
