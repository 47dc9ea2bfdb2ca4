"""The event catalogue (SPEC §4): one schema per event type and its category.

Parsing returns a typed `Event` or raises `InvalidEvent` with every field error at once,
keyed by its path in the body (`data.caller_number`), which the webhook answers as 422.
Only validated fields are kept: whatever else a sender puts in `data` is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

import pydantic
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from notifyd.settings import LANGUAGES, check_timezone


class Category(StrEnum):
    CALLS = "calls"
    VOICEMAIL = "voicemail"
    FAX = "fax"
    SECURITY = "security"
    BILLING = "billing"
    LOW_CREDIT = "low_credit"
    SERVICE = "service"
    MARKETING = "marketing"


MANDATORY_CATEGORIES = frozenset({Category.SECURITY, Category.SERVICE})

# Printable text without line breaks or other control characters: names and numbers end up
# in subjects and headers, and a CR/LF there is a header injection.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# "As dialled" numbers: digits with the punctuation PBXes write, or a withheld-number word.
_DIALLED = re.compile(r"^\+?[0-9*#][0-9*# ().-]{0,39}$")
_WITHHELD = {"anonymous", "unknown", "restricted", "private", "unavailable", "withheld"}


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be a single line of text without control characters")
    return value


def _phone_number(value: str) -> str:
    value = value.strip()
    if value.lower() in _WITHHELD:
        return value.lower()
    if not _DIALLED.match(value) or not any(c.isdigit() for c in value):
        raise ValueError("must be a phone number (E.164 such as +40721555123, or as dialled)")
    return value


def _email(value: str) -> str:
    try:
        # Syntax only: no DNS lookups at ingest, they would make webhooks slow and flaky.
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid email address: {error}") from None


def _timezone(value: str) -> str:
    message = check_timezone(value)
    if message:
        raise ValueError(message)
    return value


Text = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_single_line)]
Identifier = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_single_line)]
PhoneNumber = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_phone_number)]
EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(_email)]
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]
Language = Literal["ro", "en"]
assert set(LANGUAGES) == {"ro", "en"}


class EventData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    type_name: ClassVar[str]
    category: ClassVar[Category | None]

    account_id: Identifier


class AccountCreated(EventData):
    type_name = "account.created"
    category = Category.SERVICE

    email: EmailAddress
    username: Text
    name: Text | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None


class CallMissed(EventData):
    type_name = "call.missed"
    category = Category.CALLS

    call_id: Identifier
    caller_number: PhoneNumber
    caller_name: Text | None = None
    called_number: PhoneNumber
    extension: Annotated[str, Field(max_length=32), AfterValidator(_single_line)] | None = None
    started_at: AwareDatetime
    ring_seconds: Annotated[int, Field(ge=0, le=86400)] | None = None
    to_voicemail: bool = False


CATALOGUE: dict[str, type[EventData]] = {
    model.type_name: model for model in (AccountCreated, CallMissed)
}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Annotated[str, Field(min_length=1, max_length=64)]
    timestamp: AwareDatetime
    data: dict[str, Any]


@dataclass(frozen=True)
class Event:
    type: str
    timestamp: datetime
    data: EventData

    @property
    def account_id(self) -> str:
        return self.data.account_id


class MalformedBody(Exception):
    """The body is not JSON (answered 400)."""


class InvalidEvent(Exception):
    """The body is JSON but not a valid event; `fields` maps each path to what is wrong."""

    def __init__(
        self, code: str, detail: str, fields: dict[str, str], event_type: str | None = None
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = fields
        # Set only for a known catalogue type, so it is safe as a metric label.
        self.event_type = event_type


def _field_errors(error: pydantic.ValidationError, prefix: str = "") -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        key = f"{prefix}{path}" if path else prefix.rstrip(".") or "body"
        fields.setdefault(key, message)
    return fields


def parse_event(body: bytes) -> Event:
    """Parse and validate a webhook body (one JSON parse); raise MalformedBody or InvalidEvent."""
    try:
        envelope = Envelope.model_validate_json(body)
    except pydantic.ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors()):
            raise MalformedBody("the body is not valid JSON") from None
        if any(item["type"] == "model_type" for item in error.errors()):
            raise InvalidEvent(
                "invalid_event", "the body must be a JSON object", {"body": "must be an object"}
            ) from None
        raise InvalidEvent(
            "invalid_event", "the event envelope is invalid", _field_errors(error)
        ) from None
    model = CATALOGUE.get(envelope.type)
    if model is None:
        raise InvalidEvent(
            "unknown_type",
            f"unknown event type {envelope.type!r}",
            {"type": f"unknown event type; known types: {', '.join(sorted(CATALOGUE))}"},
        )
    try:
        data = model.model_validate(envelope.data)
    except pydantic.ValidationError as error:
        raise InvalidEvent(
            "invalid_event",
            f"invalid data for {envelope.type}",
            _field_errors(error, prefix="data."),
            event_type=envelope.type,
        ) from None
    return Event(type=envelope.type, timestamp=envelope.timestamp, data=data)
