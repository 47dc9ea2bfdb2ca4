"""How notices go out: [delivery] (claims, retries, caps, the breaker, pacing),
[attachments] (what is accepted, fetched, attached and kept) and [callbacks] (how what
became of them is told back to the sources)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from notifyd.catalogue.fetch_allowlist import parse_entry
from notifyd.settings.fields import Section, array, web_url
from notifyd.settings.service import SMTP_CONNECTIONS

HOUR = 3600.0
DAY = 24 * HOUR
# A missed call a day later is noise; a security notice is not.
DEFAULT_LIFETIMES = {
    "calls": DAY,
    "voicemail": 5 * DAY,
    "fax": 5 * DAY,
    "billing": 5 * DAY,
    "low_credit": 2 * DAY,
    "statement": 5 * DAY,
    "marketing": 2 * DAY,
    "service": 5 * DAY,
    "security": 5 * DAY,
}
# Notices in flight per SMTP connection: one waiting for its reply and record, one written
# behind it. More than the connections, so that while some are sent others are claimed,
# rendered and recorded (8 left 4 connections idle half the time: delivery 0.55x -> 0.71x of
# aiosmtplib with 32, bench/delivery.py); more only wait (with 4 connections, 64 in flight
# delivered 779 msg/s against 1,057 with 8, bench/delivery.py --connections 4).
IN_FLIGHT_PER_CONNECTION = 2
_LIFETIME_RANGE = (60, 60 * 86400)


def _lifetime_category(category: str) -> str:
    if category not in DEFAULT_LIFETIMES:
        raise ValueError(f"unknown category; known: {', '.join(DEFAULT_LIFETIMES)}")
    return category


def _lifetime(seconds: object) -> object:
    low, high = _LIFETIME_RANGE
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        seconds = None
    if seconds is None or not low <= seconds <= high:
        raise ValueError(f"must be seconds between {low} and {high}")
    return float(seconds)


def _over_the_defaults(lifetimes: Mapping[str, float]) -> Mapping[str, float]:
    return {**DEFAULT_LIFETIMES, **lifetimes}


def _rate(rate: object) -> object:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ValueError("must be messages per second above 0")
    return float(rate)


class DeliverySettings(Section):
    concurrency: int = Field(
        IN_FLIGHT_PER_CONNECTION * SMTP_CONNECTIONS,
        ge=1,
        le=1000,
        description="Notices in flight per host (rendered, sending, recording); unset: twice "
        "[smtp] pool_size.",
    )
    batch_size: int = Field(50, ge=1, le=10000, description="Notices claimed per query.")
    lease_seconds: float = Field(
        30.0,
        ge=0.3,
        le=3600,
        description="A host that died leaves its claims for this long; a living host renews "
        "them every lease/3 while it sends.",
    )
    poll_seconds: float = Field(
        5.0, ge=0.05, le=3600, description="Backstop when a LISTEN/NOTIFY wake-up is lost."
    )
    # Postfix's defaults: first retry after 5 minutes, doubling to at most ~67 minutes apart,
    # give up after 5 days.
    retry_initial_seconds: float = Field(
        300.0,
        ge=0.01,
        le=86400,
        description="First retry after a 4xx or connection fault...",
    )
    retry_max_seconds: float = Field(
        4000.0,
        ge=0.01,
        le=7 * 86400,
        description="...doubling up to this, with +-20 % jitter (Postfix's).",
    )
    retry_lifetime_seconds: float = Field(
        5 * DAY,
        ge=1,
        le=60 * DAY,
        description="Give up (dead letter) after 5 days, or sooner per category: "
        "[delivery.lifetimes].",
    )
    hourly_cap: int = Field(
        20,
        ge=0,
        le=100000,
        description="Emails per subscriber, category and hour; the surplus waits for the next "
        "hourly digest (0: no cap).",
    )
    bounce_limit: int = Field(
        3,
        ge=1,
        le=1000,
        description="Hard bounces (5xx) before an address is undeliverable.",
    )
    breaker_threshold: int = Field(
        5,
        ge=0,
        le=10000,
        description="Consecutive 5xx for different addresses: the relay refuses everything "
        "(wrong password?): pause, alert, keep notices.",
    )
    breaker_cooldown_seconds: float = Field(
        60.0,
        ge=0.01,
        le=86400,
        description="Pause before trying again (doubling up to 1 h).",
    )
    domain_rate: float = Field(
        0.0,
        ge=0,
        le=100000,
        description="Messages per second per recipient domain; 0: unlimited.",
    )
    lifetimes: Annotated[
        Mapping[
            Annotated[str, AfterValidator(_lifetime_category)],
            Annotated[float, BeforeValidator(_lifetime)],
        ],
        AfterValidator(_over_the_defaults),
    ] = Field(
        default_factory=lambda: dict(DEFAULT_LIFETIMES),
        description="How long a notice of each category is still worth sending (seconds); "
        'past it the notice goes to the dead letters (failed, "expired"). A missed call a '
        "day later is noise. Unlisted: retry_lifetime_seconds.",
    )
    domain_rates: Mapping[
        Annotated[str, AfterValidator(str.lower)], Annotated[float, BeforeValidator(_rate)]
    ] = Field(
        default_factory=dict,
        examples=[{"example.com": 10}],
        description="Per recipient domain, overriding domain_rate (messages per second).",
    )

    @field_validator("retry_max_seconds")
    @classmethod
    def _at_least_the_first(cls, value: float, info: ValidationInfo) -> float:
        first = info.data.get("retry_initial_seconds")
        if first is not None and value < first:
            raise ValueError("must be at least retry_initial_seconds")
        return value

    def lifetime(self, category: str) -> float:
        return self.lifetimes.get(category, self.retry_lifetime_seconds)


def _host(entry: object) -> object:
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError("must be a host name, IP address or CIDR")
    parse_entry(entry)  # its ValueError says what is wrong
    return entry.strip().lower()


_FETCH_ALLOW_HOSTS = """\
Where voicemail and fax URLs may be fetched from (default: nowhere). Each entry is a host \
name, an IP address or a CIDR network, with an optional port: "pbx.internal.example:8088", \
"10.20.0.5:8088", "[2001:db8::5]:8088"; without one, any port. A name is resolved once per \
request and notifyd connects only to the address it checked; every redirect (at most 3) is \
checked again. Besides these, the address that posted the webhook and its source's \
allow_from networks are trusted for URLs on them (any port): the PBX offers files from where \
it posts.

Never fetched, whatever the entries above or the sender: loopback (127.0.0.0/8, ::1), \
unspecified (0.0.0.0/8, ::), link-local (169.254.0.0/16, fe80::/10), multicast, broadcast \
and reserved (240.0.0.0/4), cloud metadata (169.254.169.254, fd00:ec2::254, \
100.100.100.200, 168.63.129.16), nor these written as IPv4-mapped IPv6 (::ffff:127.0.0.1) \
-- unless an IP/CIDR entry here lists the address or a network inside its range, e.g. \
"127.0.0.1:8088" for a PBX file server on this host. A name, a wider network ("0.0.0.0/0") \
or a sender behind a reverse proxy on this host (127.0.0.1) never opens one. A refused URL \
is not retried: the email goes out saying the file could not be retrieved."""


class AttachmentSettings(Section):
    max_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        le=1024**3,
        description="Voicemail audio / fax document accepted (422 above).",
    )
    max_email_bytes: int = Field(
        10 * 1024 * 1024,
        ge=0,
        le=1024**3,
        description="Attached to the email; larger ones are named, not attached.",
    )
    fetch_allow_hosts: Annotated[
        tuple[Annotated[str, BeforeValidator(_host)], ...], BeforeValidator(array)
    ] = Field(
        (),
        examples=[("pbx.internal.example", "10.20.0.0/16")],
        description=_FETCH_ALLOW_HOSTS,
    )
    fetch_timeout_seconds: float = Field(30.0, ge=0.1, le=600)
    fetch_attempts: int = Field(
        5,
        ge=1,
        le=100,
        description="Then the email goes out saying the file could not be retrieved.",
    )
    # A voicemail should not wait minutes for a PBX file server that hiccuped.
    fetch_retry_seconds: float = Field(
        5.0,
        ge=0.05,
        le=3600,
        description="Wait before the next try, doubling (5, 10, 20, 40 s).",
    )
    # How long the bytes are kept after delivery: [retention] payload_days.
    # Checked before a TIFF is decoded (attachments.PageLimits).
    max_pages: int = Field(
        100,
        ge=1,
        le=10_000,
        description="A TIFF fax with more pages is refused (422), before decoding.",
    )
    # Under Pillow's decompression-bomb threshold (89.5 million pixels), so that its own check
    # never refuses a page before ours names the limit.
    max_pixels: int = Field(
        25_000_000,
        ge=10_000,
        le=80_000_000,
        description="Per TIFF page (a 400 dpi legal fax page is 19.4 million); larger pages "
        "are refused (422), before decoding.",
    )
    portal_url: Annotated[str, AfterValidator(web_url)] = Field(
        "", description="Where subscribers find what could not be attached."
    )


class CallbackSenderSettings(Section):
    """How delivery callbacks ([sources.<name>.callback]) are posted, by every host: claimed
    with a lease like notices, retried with back-off until the receiver answers 2xx or the
    source's max_age_hours has passed."""

    concurrency: int = Field(8, ge=1, le=256, description="Callbacks posted at once per host.")
    lease_seconds: float = Field(
        60.0,
        ge=5,
        le=3600,
        description="A claimed callback another host takes over after this (a host that "
        "died); longer than any source's timeout_seconds.",
    )
    poll_seconds: float = Field(
        2.0, ge=0.05, le=300, description="How often each host looks for callbacks due."
    )
    retry_initial_seconds: float = Field(
        5.0, ge=0.01, le=86400, description="First wait after a failed post; doubles."
    )
    retry_max_seconds: float = Field(
        900.0, ge=0.01, le=86400, description="Longest wait between two posts of a callback."
    )
