"""The field types of the event catalogue: what each kind of value a PBX or billing system
sends may hold, and how it is cleaned (control characters out, addresses normalised, caller
IDs kept as the switch sent them), and `SenderData`, what every event's data is built on (an
optional field sent as null or blank text is absent). Used by `events` for the webhooks and
by the admin API.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from notifyd import unstorable
from notifyd.catalogue.locale import LANGUAGES, check_timezone
from notifyd.catalogue.phones import caller_id, normalised

# Printable text without line breaks or other control characters: names and numbers end up
# in subjects and headers, and a CR/LF there is a header injection.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What a cleaned line may not keep: C0 and C1 controls (spaces instead).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The longest caller name kept: longer ones are shortened to it, ending in "…".
CALLER_NAME_MAX = 200
# Longer than any SIP URI with its parameters that a PBX puts in a caller ID.
CALLER_ID_MAX = 256


def _text(value: str) -> str:
    # A lone surrogate is not text: it cannot be stored, logged or sent. No sender has one
    # to send (JSON from UTF-8 bytes cannot hold one), so it is refused, never cleaned.
    if unstorable.has_surrogate(value):
        raise ValueError(unstorable.SURROGATE)
    return value


def single_line(value: str) -> str:
    if _CONTROL.search(_text(value)):
        raise ValueError("must be a single line of text without control characters")
    return value


def _cleaned(value: str) -> str:
    """Control characters as spaces, runs of white space as one."""
    return " ".join(_UNPRINTABLE.sub(" ", _text(value)).split())


def _blank(value: Any) -> bool:
    """Whether a sender's value says nothing: null, or text with nothing printable in it."""
    if not isinstance(value, str):
        return value is None
    # isprintable() first: it is what nearly every value is, and costs far less than _cleaned.
    return not value.strip() or (not value.isprintable() and not _cleaned(value))


def display_line(value: str) -> str:
    # Names come from callers (caller ID name is whatever the caller's switch sends): a line
    # break there is an injection attempt or noise, never a reason to lose the notice. Control
    # characters become spaces; `mail.mime` then encodes the rest safely in headers.
    cleaned = _cleaned(value)
    if not cleaned:
        raise ValueError("must contain printable text")
    return cleaned


def _caller_name(value: str) -> str:
    # A SIP display name is whatever the caller's switch put in From, of any length: a name
    # too long is cut, never a reason to refuse the call (SPEC §4). Cut before cleaning too,
    # so that a huge one costs no more than a long one.
    cleaned = display_line(value[: 4 * CALLER_NAME_MAX])
    if len(cleaned) <= CALLER_NAME_MAX:
        return cleaned
    return cleaned[: CALLER_NAME_MAX - 1].rstrip() + "…"


def multi_line(value: str) -> str:
    # Transcripts and reasons may have line breaks, never other control characters.
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", _text(value)):
        raise ValueError("must be text without control characters")
    return value


def _integer_as_text(value: Any) -> Any:
    # A JSON integer: digits a dialplan wrote unquoted (`"extension": ${EXTEN}`). Not a
    # float: 1700000000.40 would read as 1700000000.4, another call's linkedid.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _unquoted(value: Any) -> Any:
    # JSON null: the PBX has no caller ID. A JSON integer: as _integer_as_text.
    return "" if value is None else _integer_as_text(value)


@functools.lru_cache(maxsize=4096)
def _caller_id(value: str) -> str:
    """Cached: the same callers come back all day, and parsing a number with `phonenumbers`
    costs more than the rest of the event's validation."""
    # Whatever the PBX has is accepted (a missed call refused is a missed call lost: a PBX
    # does not retry a 4xx): empty and withheld values, names, SIP URIs, * and #.
    return caller_id(_cleaned(value))


@functools.lru_cache(maxsize=4096)
def _called_number(value: str) -> str:
    cleaned = _cleaned(value)
    if not cleaned:
        # The PBX always knows what was dialled (Asterisk's EXTEN, FreeSWITCH's
        # destination_number): an empty one is a broken integration.
        raise ValueError("must be the number, extension or SIP URI that was called")
    return normalised(cleaned)


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


def _money(value: str) -> str:
    if not _MONEY.match(value):
        # Said of text: "20,50" (a Romanian decimal comma), "20 RON", "1,000.00".
        raise ValueError(
            'must be a decimal such as "12.50": a point, no unit, no thousands separators'
        )
    return str(Decimal(value))


def _money_number(value: Any) -> Any:
    # A JSON number, as PHP's json_encode or JavaScript write an amount: taken only where its
    # shortest decimal form is the amount written (at most 15 significant digits, which a
    # binary float keeps exactly as written). 0.1 + 0.2 is 0.30000000000000004 there, and
    # shown as 0.30 it would be another amount than the sender's: refused.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    text = str(value) if isinstance(value, int) else repr(value)
    digits = Decimal(text).as_tuple()
    if not _MONEY.match(text) or (isinstance(value, float) and len(digits.digits) > 15):
        raise ValueError(
            f"the JSON number {text} cannot be read exactly as an amount: "
            'send a decimal string such as "12.50"'
        )
    return text


def _day(value: Any) -> Any:
    # A day as billing systems write it: ISO's 2026-12-05 or 20261205, or a moment whose
    # day it is where it was written (2026-12-05T23:30:00+02:00 is 5 December). A number is
    # not a day (it would be read as Unix seconds, 20261205 as 23 August 1970).
    if isinstance(value, str):
        for parse in (date.fromisoformat, datetime.fromisoformat):
            try:
                parsed = parse(value.strip())
            except ValueError:
                continue
            return parsed.date() if isinstance(parsed, datetime) else parsed
    if isinstance(value, date):
        return value
    raise ValueError('must be a day such as "2026-12-05"')


def _currency(value: str) -> str:
    value = value.upper()  # "eur", as some billing systems write it
    if value not in _CURRENCIES:
        raise ValueError("must be an ISO 4217 currency code such as RON or EUR")
    return value


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None


def _ip_network(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("must be an IP address or CIDR network") from None
    # A single address is written as the PBX wrote it, without a /32.
    return str(network.network_address) if "/" not in value else str(network)


def _web_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


def _file_name(value: str) -> str:
    # Only the last path component, so a name cannot point anywhere else.
    name = value.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", ".."):
        raise ValueError("must be a file name")
    return name


_MONEY = re.compile(r"^-?\d{1,12}(\.\d{1,6})?$")


_CURRENCIES = frozenset(list_currencies())


Text = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(single_line)]


DisplayText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(display_line)]


# Who called, as the PBX names them (CALLERID(name)): shortened, not refused, when long.
CallerName = Annotated[str, AfterValidator(_caller_name)]


LongText = Annotated[str, Field(min_length=1, max_length=20000), AfterValidator(multi_line)]


Identifier = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(single_line)]


# The PBX's own identifiers of a call or a mailbox: as Identifier, digits taken unquoted.
PbxIdentifier = Annotated[
    str,
    BeforeValidator(_integer_as_text),
    Field(min_length=1, max_length=128),
    AfterValidator(single_line),
]


# An extension as dialled ("101", "sip:101@pbx"): digits taken unquoted.
Extension = Annotated[
    str, BeforeValidator(_integer_as_text), Field(max_length=32), AfterValidator(single_line)
]


# The other party of a call or fax: whatever the PBX has (SPEC §4), withheld ones too.
CallerId = Annotated[
    str, BeforeValidator(_unquoted), Field(max_length=CALLER_ID_MAX), AfterValidator(_caller_id)
]


# What was called: a DID, an extension or a SIP URI.
CalledNumber = Annotated[
    str,
    BeforeValidator(_unquoted),
    Field(min_length=1, max_length=CALLER_ID_MAX),
    AfterValidator(_called_number),
]


EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(_email)]


TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_timezone)]


# An amount: a decimal string, or a JSON number that reads as exactly one.
Money = Annotated[str, BeforeValidator(_money_number), Field(max_length=24), AfterValidator(_money)]


# A calendar day: ISO in either form, or the day of an ISO moment.
Day = Annotated[date, BeforeValidator(_day)]


Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_currency)]


IPAddress = Annotated[str, Field(max_length=64), AfterValidator(_ip_address)]


IPNetworkText = Annotated[str, Field(max_length=64), AfterValidator(_ip_network)]


WebUrl = Annotated[
    str, Field(max_length=2048), AfterValidator(single_line), AfterValidator(_web_url)
]


FileName = Annotated[
    str,
    Field(min_length=1, max_length=255),
    AfterValidator(single_line),
    AfterValidator(_file_name),
]


MimeType = Annotated[str, Field(max_length=100), StringConstraints(pattern=r"^[\w.+-]+/[\w.+-]+$")]


Count = Annotated[int, Field(ge=0, le=1_000_000)]


Language = Literal["ro", "en"]
assert set(LANGUAGES) == {"ro", "en"}


class Attachment(BaseModel):
    """A file carried inline (`data_base64`) or fetched by notifyd from the PBX (`url`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    filename: FileName
    content_type: MimeType
    data_base64: str | None = Field(default=None, repr=False)
    url: WebUrl | None = None

    @field_validator("data_base64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not valid base64") from None
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Attachment:
        if (self.data_base64 is None) == (self.url is None):
            raise ValueError("give exactly one of data_base64 or url")
        return self


class SenderData(BaseModel):
    """An event's data as its sender wrote it: other fields are dropped, text is stripped, and
    an optional field given as null or blank text is absent (`events` builds on it)."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        # A dialplan or template writes every field it has, so what the sender does not know
        # comes as "" or null (Asterisk's empty CALLERID(name), a voicemail without a
        # transcript). Such an optional field is left out, not refused: a PBX does not retry
        # a 4xx, and the missed call or voicemail would be lost.
        if not isinstance(data, dict):
            return data
        optional = _optional_fields(cls)
        empty = [key for key, value in data.items() if key in optional and _blank(value)]
        return {k: v for k, v in data.items() if k not in empty} if empty else data


@functools.cache
def _optional_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, info in model.model_fields.items() if not info.is_required())
