"""The event catalogue (SPEC §4): one schema per event type and its category.

Parsing returns a typed `Event` or raises `InvalidEvent` with every field error at once,
keyed by its path in the body (`data.caller_number`), which the webhook answers as 422.
Only validated fields are kept: whatever else a sender puts in `data` is dropped. The kinds
of value the fields hold (text, caller IDs, addresses, money) are `fields`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar

import pydantic
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from notifyd import unstorable
from notifyd.catalogue.fields import (
    Attachment,
    CalledNumber,
    CallerId,
    CallerName,
    Currency,
    Day,
    DisplayText,
    EmailAddress,
    Extension,
    IPAddress,
    IPNetworkText,
    Language,
    LongText,
    Money,
    PbxIdentifier,
    SenderData,
    Text,
    TimeZoneName,
    WebUrl,
    display_line,
    multi_line,
)
from notifyd.catalogue.locale import read_locale


class Category(StrEnum):
    CALLS = "calls"
    VOICEMAIL = "voicemail"
    FAX = "fax"
    SECURITY = "security"
    BILLING = "billing"
    LOW_CREDIT = "low_credit"
    # The monthly credit statement (kind billing.statement): no event sends it, the
    # statement job does (jobs.py); off unless the subscriber turns it on.
    STATEMENT = "statement"
    SERVICE = "service"
    MARKETING = "marketing"


MANDATORY_CATEGORIES = frozenset({Category.SECURITY, Category.SERVICE})
# The categories a subscriber (or [defaults.modes]) may choose a mode and addresses for, in
# the catalogue's order: every one but the mandatory ones.
CONFIGURABLE_CATEGORIES = tuple(c.value for c in Category if c not in MANDATORY_CATEGORIES)
# Categories a subscriber gets only once they (or [defaults.modes]) turn them on.
OFF_BY_DEFAULT = frozenset({Category.STATEMENT})
# Other names a category is asked for by: issue 20 calls the statement's category
# "billing.statement" (its notice kind). The short name is the stored one, since a bare
# dotted key in TOML would read as a nested table; both are taken wherever a category is.
CATEGORY_ALIASES = {"billing.statement": Category.STATEMENT.value}


def canonical_category(name: str) -> str:
    """The stored name of a category given by either of its names."""
    return CATEGORY_ALIASES.get(name, name)


class EventData(SenderData):
    type_name: ClassVar[str]
    # None: the event changes state and sends nothing by itself.
    category: ClassVar[Category | None]

    account_id: PbxIdentifier


class AccountLocale(EventData):
    """An account's event: its language and time zone are read as billing systems write them
    (`locale.read_locale`); one notifyd cannot map is left out, never refused (a refused
    account.created loses every notice of the account), and named by `not_understood`."""

    _not_understood: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _mapped(cls, data: Any, handler: pydantic.ValidatorFunctionWrapHandler) -> Any:
        data, dropped = read_locale(data)
        model = handler(data)
        if dropped:
            model._not_understood = dropped
        else:
            model.check_complete()
        return model

    @property
    def not_understood(self) -> tuple[str, ...]:
        """The fields sent with a value notifyd could not map, and so left out."""
        return self._not_understood

    def check_complete(self) -> None:
        """Raise ValueError when the event, all of it understood, says nothing."""


class AccountCreated(AccountLocale):
    type_name = "account.created"
    category = Category.SERVICE

    email: EmailAddress
    username: Text
    name: DisplayText | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None


class AccountUpdated(AccountLocale):
    type_name = "account.updated"
    category = None

    email: EmailAddress | None = None
    name: DisplayText | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None

    def check_complete(self) -> None:
        # Not called when a field was not understood: such an update is kept, changing nothing.
        if all(v is None for v in (self.email, self.name, self.language, self.timezone)):
            raise ValueError("give at least one of email, name, language, timezone")


class AccountClosed(EventData):
    type_name = "account.closed"
    category = Category.SERVICE

    closed_at: AwareDatetime


class CallMissed(EventData):
    type_name = "call.missed"
    category = Category.CALLS

    call_id: PbxIdentifier
    caller_number: CallerId
    caller_name: CallerName | None = None
    called_number: CalledNumber
    extension: Extension | None = None
    started_at: AwareDatetime
    ring_seconds: Annotated[int, Field(ge=0, le=86400)] | None = None
    to_voicemail: bool = False


class VoicemailReceived(EventData):
    type_name = "voicemail.received"
    category = Category.VOICEMAIL

    call_id: PbxIdentifier | None = None
    mailbox: PbxIdentifier
    caller_number: CallerId
    caller_name: CallerName | None = None
    duration_seconds: Annotated[int, Field(ge=0, le=86400)]
    received_at: AwareDatetime
    audio: Attachment
    transcript: LongText | None = None


class FaxReceived(EventData):
    type_name = "fax.received"
    category = Category.FAX

    remote_number: CallerId
    pages: Annotated[int, Field(ge=1, le=10000)]
    received_at: AwareDatetime
    document: Attachment


class FaxSent(EventData):
    type_name = "fax.sent"
    category = Category.FAX

    remote_number: CallerId
    pages: Annotated[int, Field(ge=1, le=10000)]
    sent_at: AwareDatetime


class FaxFailed(EventData):
    type_name = "fax.failed"
    category = Category.FAX

    remote_number: CallerId
    pages: Annotated[int, Field(ge=0, le=10000)]
    sent_at: AwareDatetime
    reason: Annotated[str, Field(max_length=500), AfterValidator(multi_line)] | None = None


class PasswordChanged(EventData):
    type_name = "account.password_changed"
    category = Category.SECURITY

    changed_at: AwareDatetime
    source_ip: IPAddress | None = None
    user_agent: Annotated[str, Field(max_length=500), AfterValidator(display_line)] | None = None


class PasswordResetRequested(EventData):
    type_name = "account.password_reset_requested"
    category = Category.SECURITY

    reset_url: WebUrl
    expires_at: AwareDatetime
    source_ip: IPAddress | None = None


class PinCreated(EventData):
    type_name = "account.pin_created"
    category = Category.SECURITY

    created_at: AwareDatetime
    source_ip: IPAddress | None = None


class IpAllowlistChanged(EventData):
    type_name = "account.ip_allowlist_changed"
    category = Category.SECURITY

    previous: Annotated[list[IPNetworkText], Field(max_length=1000)]
    current: Annotated[list[IPNetworkText], Field(max_length=1000)]
    changed_by: DisplayText | None = None
    source_ip: IPAddress | None = None


class DailyLimitExceeded(EventData):
    type_name = "usage.daily_limit_exceeded"
    category = Category.SECURITY

    limit: Money
    spent: Money
    currency: Currency
    date: Day


class BalanceUpdated(EventData):
    type_name = "billing.balance_updated"
    category = Category.LOW_CREDIT  # only when a threshold is crossed downwards

    balance: Money
    currency: Currency


class CreditAdded(EventData):
    type_name = "billing.credit_added"
    category = Category.BILLING

    amount: Money
    currency: Currency
    new_balance: Money
    method: DisplayText | None = None


class PaymentConfirmed(EventData):
    type_name = "billing.payment_confirmed"
    category = Category.BILLING

    payment_id: PbxIdentifier
    amount: Money
    currency: Currency
    invoice_number: PbxIdentifier | None = None
    paid_at: AwareDatetime


CATALOGUE: dict[str, type[EventData]] = {
    model.type_name: model
    for model in (
        AccountCreated,
        AccountUpdated,
        AccountClosed,
        CallMissed,
        VoicemailReceived,
        FaxReceived,
        FaxSent,
        FaxFailed,
        PasswordChanged,
        PasswordResetRequested,
        PinCreated,
        IpAllowlistChanged,
        DailyLimitExceeded,
        BalanceUpdated,
        CreditAdded,
        PaymentConfirmed,
    )
}


# Free text a sender writes as it likes (a fax's failure, who changed an allowlist, a
# payment method, a voicemail's transcript, a browser's identity): it may hold anything, so
# it is kept only for [retention] payload_days after its notices went out, then removed
# from the stored event (storage/sql/events.sql strip_free_text; migration 0013 indexes the
# events that still hold some: the three lists are the same).
FREE_TEXT_FIELDS = ("reason", "changed_by", "method", "transcript", "user_agent")


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Annotated[str, Field(min_length=1, max_length=64)]
    timestamp: AwareDatetime
    data: dict[str, Any]


def stored_fields(data: EventData) -> dict[str, Any]:
    """The validated fields as stored and rendered: attachment bytes are kept elsewhere."""
    fields = data.model_dump(mode="json")
    return {
        key: {k: v for k, v in value.items() if k != "data_base64"}
        if isinstance(value, dict)
        else value
        for key, value in fields.items()
    }


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
            refused = unstorable.in_refused_json(body)
            if refused:
                raise InvalidEvent(
                    "invalid_event", "a string in the body is not text (a lone surrogate)", refused
                ) from None
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
    # The fields cleaned what they clean and refused the rest; this holds for any field.
    refused = unstorable.found(data, "data") if unstorable.may_hold_nul(body) else {}
    if refused:
        raise InvalidEvent(
            "invalid_event", f"invalid data for {envelope.type}", refused, event_type=envelope.type
        )
    return Event(type=envelope.type, timestamp=envelope.timestamp, data=data)
