"""What decides on a webhook: [sources.<name>] (what authenticates it: Standard
Webhooks secrets, or a sending service's own credentials; and the callback that tells a source what
became of its events' notices, [sources.<name>.callback]), [webhooks], [defaults],
[thresholds.<CUR>], [calls] and [broadcasts]."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notifyd.catalogue.events import CONFIGURABLE_CATEGORIES, canonical_category
from notifyd.catalogue.locale import LANGUAGES, check_timezone
from notifyd.model import MODES, QuietHours, parse_quiet_hours, parse_time_of_day
from notifyd.settings.fields import Section, array, existing, one_of
from notifyd.settings.service_credentials import (
    SNS_CERTIFICATE_HOSTS,
    regular_expression,
    sendgrid_public_key,
    topic_arn,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Categories whose default mode the admin may set (security and service are mandatory).
DEFAULT_MODE_CATEGORIES = CONFIGURABLE_CATEGORIES


def check_webhook_secret(secret: str) -> str | None:
    if not secret.startswith("whsec_"):
        return "must start with 'whsec_' (Standard Webhooks secret)"
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return "is not valid base64 after 'whsec_'"
    if len(key) < 16:
        return f"key is {len(key)} bytes; use at least 16 (24 to 64 recommended)"
    return None


def _secret(value: str) -> str:
    message = check_webhook_secret(value)
    if message:
        raise ValueError(message)
    return value


def _secret_or_none(value: str) -> str:
    return _secret(value) if value else value


def _network(value: object) -> object:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise ValueError(f"is not an IP address or CIDR: {value!r}") from None


SOURCE_KINDS = ("events", "mta", "postmark", "mailgun", "sendgrid", "ses")
# The sending services whose JSON bounce and complaint webhooks POST /v1/reports/<name>
# takes, each authenticated its own way (http/service_reports.py).
SERVICE_KINDS = ("postmark", "mailgun", "sendgrid", "ses")


def _callback_url(url: str) -> str:
    if not url.startswith(("https://", "http://")) or any(c in url for c in " \r\n"):
        raise ValueError("must be an http(s) URL")
    return url


class CallbackSettings(Section):
    """Where notifyd tells the source what became of the notices of its events: a signed
    Standard Webhooks POST (notice.delivered, notice.failed, notice.dead_lettered; see
    docs/integrations.md), retried until the receiver answers 2xx."""

    url: Annotated[str, AfterValidator(_callback_url)] = Field(repr=False)
    # Its own secret, not one of the source's: the source verifies what notifyd signs.
    secret: Annotated[str, AfterValidator(_secret_or_none)] = Field("", repr=False)
    # Or a file holding it (read at start and reload), to keep it out of the config file.
    secret_file: Annotated[Path | None, BeforeValidator(existing("file"))] = None
    timeout_seconds: float = Field(10.0, ge=0.1, le=300)
    # Past this age (from the notice's outcome) a callback not acknowledged is given up.
    max_age_hours: float = Field(72.0, gt=0, le=24 * 90)

    @model_validator(mode="after")
    def _one_secret(self) -> CallbackSettings:
        if self.secret and self.secret_file:
            raise ValueError("set secret or secret_file, not both")
        if self.secret_file is not None:
            text = self.secret_file.read_text("utf-8").strip()
            message = check_webhook_secret(text)
            if message:
                raise ValueError(f"secret_file {self.secret_file}: the secret {message}")
            # Frozen: set once, here; the sender signs with `secret` either way.
            object.__setattr__(self, "secret", text)
        if not self.secret:
            raise ValueError("needs secret or secret_file (a whsec_ secret of its own)")
        return self


class SourceSettings(Section):
    """One webhook sender: POST /v1/webhooks/<name> (the table's name), or for a source of
    bounce and complaint reports POST /v1/reports/<name>."""

    kind: Annotated[
        Literal["events", "mta", "postmark", "mailgun", "sendgrid", "ses"], one_of(SOURCE_KINDS)
    ] = Field(
        "events",
        description='"events": JSON events of the catalogue; "mta": bounce and complaint '
        "reports (DSN, ARF) as raw messages, from contrib/postfix/notifyd-bounce; "
        '"postmark", "mailgun", "sendgrid", "ses": that sending service\'s bounce and '
        "complaint webhooks (docs/integrations.md).",
    )

    # Several may be valid at once while a secret is rotated; any one's signature is accepted.
    # Needed by "events" and "mta" sources (a sending service authenticates its own way).
    secrets: Annotated[
        tuple[Annotated[str, AfterValidator(_secret)], ...],
        BeforeValidator(array),
    ] = Field((), repr=False, validate_default=True)
    # Only these addresses or networks may post for this source (others get 403); None: any.
    allow_from: Annotated[
        tuple[Annotated[IPNetwork, BeforeValidator(_network)], ...] | None,
        BeforeValidator(array),
    ] = None
    callback: CallbackSettings | None = None
    # "postmark": the HTTP basic auth user and password put in the webhook's URL in Postmark.
    user: str = ""
    password: str = Field("", repr=False)
    # "mailgun": the HTTP webhook signing key (Mailgun: Sending > Webhooks); several while
    # one is rotated.
    signing_keys: Annotated[tuple[str, ...], BeforeValidator(array)] = Field((), repr=False)
    # "sendgrid": the Signed Event Webhook's verification key (base64, as SendGrid's console
    # shows it); several while one is rotated.
    public_keys: Annotated[
        tuple[Annotated[str, AfterValidator(sendgrid_public_key)], ...], BeforeValidator(array)
    ] = Field((), repr=False)
    # "ses": the SNS topics SES publishes this source's bounces and complaints to; a message
    # of any other topic is refused, signed by SNS or not (anyone can make a topic).
    topic_arns: Annotated[
        tuple[Annotated[str, AfterValidator(topic_arn)], ...], BeforeValidator(array)
    ] = ()
    # "ses": the hosts SNS's SigningCertURL and SubscribeURL may name (a regular expression
    # over the host). Change only for a test: any other host could sign what it likes.
    certificate_hosts: Annotated[str, AfterValidator(regular_expression)] = SNS_CERTIFICATE_HOSTS
    # "ses": a PEM bundle of the CA to trust when fetching SNS's certificate; empty: the
    # system's CAs (what SNS's hosts need). Set only for a test.
    certificate_ca_file: Annotated[Path | None, BeforeValidator(existing("file"))] = None

    @field_validator("secrets")
    @classmethod
    def _some(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if not value and info.data.get("kind", "events") in ("events", "mta"):
            raise ValueError("must list at least one secret")
        return value

    @model_validator(mode="after")
    def _credentials_of_its_kind(self) -> SourceSettings:
        wanted = {
            "events": ("secrets",),
            "mta": ("secrets",),
            "postmark": ("user", "password"),
            "mailgun": ("signing_keys",),
            "sendgrid": ("public_keys",),
            "ses": ("topic_arns",),
        }[self.kind]
        for key in wanted:
            if not getattr(self, key):
                raise ValueError(f'a "{self.kind}" source needs {key}')
        given = {"secrets", "user", "password", "signing_keys", "public_keys", "topic_arns"}
        given -= set(wanted)
        stray = sorted(key for key in given if getattr(self, key))
        if stray:
            raise ValueError(f'a "{self.kind}" source takes no {", ".join(stray)}')
        if self.kind == "postmark" and len(self.password) < 16:
            raise ValueError("password: use at least 16 characters (secrets.token_urlsafe(24))")
        return self


def source_name(name: str) -> str:
    if not SOURCE_NAME.match(name):
        raise ValueError("source names are lowercase letters, digits, '-' and '_'")
    return name


class WebhookSettings(Section):
    timestamp_tolerance_seconds: int = Field(
        300, ge=1, le=86400, description="webhook-timestamp this far from now is refused (401)."
    )
    idempotency_days: int = Field(
        7, ge=7, le=3650, description="webhook-id remembered this long (at least 7)."
    )
    max_body_bytes: int = Field(
        25 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="25 MiB: voicemail and fax attachments (413 above).",
    )
    max_bytes_in_flight: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        le=16 * 1024**3,
        description="100 MiB: bytes of all webhook bodies received and being worked on at "
        "once; past it 503 + Retry-After, before the body is read when its Content-Length "
        "cannot fit (memory is a few times this: text, parsed JSON, decoded attachments). "
        "At least max_body_bytes.",
    )
    body_idle_seconds: float = Field(
        30.0,
        ge=0.5,
        le=3600,
        description="a webhook body that sends nothing for this long is cut (408) and its "
        "bytes let go: a stalled upload holds no room under max_bytes_in_flight.",
    )

    @field_validator("max_bytes_in_flight")
    @classmethod
    def _fits_the_largest_body(cls, value: int, info: ValidationInfo) -> int:
        # Else a body of the largest size allowed could never be taken.
        largest = info.data.get("max_body_bytes")
        if largest is not None and value < largest:
            raise ValueError("must be at least max_body_bytes")
        return value


def _quiet_hours(value: object) -> object:
    if isinstance(value, QuietHours) or value is None:
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return parse_quiet_hours(value)


def _time_of_day(value: object) -> object:
    if isinstance(value, time):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return parse_time_of_day(value)


def _known_zone(zone: str) -> str:
    message = check_timezone(zone)
    if message:
        raise ValueError(message)
    return zone


def _configurable(category: str) -> str:
    category = canonical_category(category)
    if category in ("security", "service"):
        raise ValueError(
            "not a category that can be configured (security and service are mandatory)"
        )
    if category not in DEFAULT_MODE_CATEGORIES:
        raise ValueError(f"unknown category; known: {', '.join(DEFAULT_MODE_CATEGORIES)}")
    return category


class DefaultsSettings(Section):
    """For subscribers who did not choose their own (they follow changes made here)."""

    language: Annotated[str, one_of(LANGUAGES)] = Field(
        "ro", description=" | ".join(f'"{language}"' for language in LANGUAGES)
    )
    timezone: Annotated[str, AfterValidator(_known_zone)] = Field(
        "Europe/Bucharest", description="IANA zone name."
    )
    quiet_hours: Annotated[QuietHours | None, BeforeValidator(_quiet_hours)] = Field(
        QuietHours(time(22, 0), time(8, 0)),
        description='Local time; "" disables. Security notices never wait.',
    )
    digest_time: Annotated[time, BeforeValidator(_time_of_day)] = Field(
        time(8, 0), description="Local time at which daily digests go out."
    )
    modes: Mapping[Annotated[str, AfterValidator(_configurable)], Annotated[str, one_of(MODES)]] = (
        Field(
            default_factory=dict,
            examples=[
                {c: "off" if c == "statement" else "immediate" for c in DEFAULT_MODE_CATEGORIES}
            ],
            description='Per category: "immediate" (the default), "hourly" or "daily" (a digest '
            'email listing the period\'s notices), or "off" (the default of "statement", the '
            "monthly credit statement: any other mode turns it on, [statements]). A category "
            "turned off (a reload is enough) also cancels, as they come due, the notices of it "
            "already waiting for subscribers who chose no mode. Security and service are "
            "mandatory: always immediate. Marketing also needs the subscriber's recorded consent.",
        )
    )


def _amount(value: object) -> object:
    if isinstance(value, Decimal):
        return value
    amount = None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            amount = None
    if amount is None or not amount.is_finite():
        raise ValueError(f'must be an amount such as "5.00", got {value!r}')
    return amount


Amount = Annotated[Decimal, BeforeValidator(_amount)]


class Thresholds(Section):
    """Low-credit thresholds for one currency (SPEC §5)."""

    low: Amount
    critical: Amount
    hysteresis: Amount = Decimal(0)

    @field_validator("critical")
    @classmethod
    def _below_low(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        low = info.data.get("low")
        if low is not None and value >= low:
            raise ValueError("must be below low")
        return value

    @field_validator("hysteresis")
    @classmethod
    def _not_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError("must not be negative")
        return value


def currency_code(name: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", name):
        raise ValueError("the name must be an ISO 4217 currency code such as RON")
    return name


class CallSettings(Section):
    voicemail_wait_seconds: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="A missed call marked to_voicemail waits this long for the voicemail of "
        "the same call; the two become one email. Without a voicemail, the missed-call email "
        "goes at the end.",
    )
    burst_window_seconds: float = Field(
        300.0,
        ge=0,
        le=86400,
        description="Missed calls within this many seconds of the last missed-call email are "
        "gathered into one follow-up email at the end of the window (0: every call its own "
        "email).",
    )


class BroadcastSettings(Section):
    batch_size: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Notices queued per transaction when a broadcast fans out.",
    )
