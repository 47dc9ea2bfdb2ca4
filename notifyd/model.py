"""The values the stages hand each other: a subscriber and their preferences (modes, quiet
hours), the notice a rule plans, why an event planned none, a low-credit level, a notice
told in a digest.
Plain frozen data, no behaviour beyond reading and writing their stored JSON: every stage
may import this module, and it imports nothing of notifyd but the catalogue."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any

from notifyd.catalogue.events import Category


class Level(StrEnum):
    OK = "ok"
    LOW = "low"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Preferences:
    """Explicit choices. An absent key means "follow the default"."""

    modes: Mapping[str, str] = field(default_factory=dict)
    # Absent: the default quiet hours; "" : none; "22:00-07:00": these.
    quiet_hours: str | None = None
    # Category -> the addresses its notices go to instead (faxes to the office).
    addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Further addresses that get every notice of a category without its own addresses.
    extra_emails: tuple[str, ...] = ()
    # Local "HH:MM" of the daily digest; absent: the default.
    digest_time: str | None = None

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> Preferences:
        stored = stored or {}
        return cls(
            modes=dict(stored.get("modes", {})),
            quiet_hours=stored.get("quiet_hours"),
            # One address was stored as a string before several were allowed.
            addresses={
                category: (value,) if isinstance(value, str) else tuple(value)
                for category, value in stored.get("addresses", {}).items()
            },
            extra_emails=tuple(stored.get("extra_emails", ())),
            digest_time=stored.get("digest_time"),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.modes:
            data["modes"] = dict(self.modes)
        if self.quiet_hours is not None:
            data["quiet_hours"] = self.quiet_hours
        if self.addresses:
            data["addresses"] = {k: list(v) for k, v in self.addresses.items()}
        if self.extra_emails:
            data["extra_emails"] = list(self.extra_emails)
        if self.digest_time is not None:
            data["digest_time"] = self.digest_time
        return data


@dataclass(frozen=True)
class Subscriber:
    account_id: str
    email: str
    name: str | None = None
    username: str | None = None
    language: str | None = None
    timezone: str | None = None
    closed_at: datetime | None = None
    voicemail_audio: bool = True
    low_credit_threshold: Decimal | None = None
    preferences: Preferences = field(default_factory=Preferences)
    # Restriction of processing (SPEC §2): since when; None when not restricted.
    restricted_at: datetime | None = None


@dataclass(frozen=True)
class RecentEmails:
    """An address's emails of one category: individual notices and digests, not held ones."""

    last_hour: int = 0
    # When the latest one went or goes out (a queued one may be due later: quiet hours).
    last_at: datetime | None = None
    # When the follow-up of a burst already being gathered goes out.
    burst_at: datetime | None = None


@dataclass(frozen=True)
class NoticePlan:
    kind: str
    category: Category
    recipient: str
    language: str
    timezone: str
    due_at: datetime
    reasons: tuple[str, ...]
    context: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str | None = None
    # "hourly" | "daily": held for the digest that goes out at `due_at`.
    digest: str | None = None
    # The account's processing is restricted (SPEC §2): stored 'restricted', neither sent
    # nor cancelled until the restriction is lifted.
    restricted: bool = False


@dataclass(frozen=True)
class Skip:
    """Why an event queued no notice: a code for programs, a sentence for people (stored
    with the event, shown by the admin API)."""

    code: str
    reason: str


@dataclass(frozen=True)
class DigestItem:
    """A notice told in a digest: its kind and the event it came from."""

    kind: str
    occurred_at: datetime
    data: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)


# How a category's notices reach the subscriber: one email each, gathered in a digest, none.
MODES = ("immediate", "hourly", "daily", "off")


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_time_of_day(value: str) -> time:
    """'08:00' -> time(8, 0). Raises ValueError naming what is wrong."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if not match:
        raise ValueError(f"must be a local time like '08:00', got {value!r}")
    try:
        return time(int(match.group(1)), int(match.group(2)))
    except ValueError:
        raise ValueError(f"is not a time of day: {value!r}") from None


def parse_quiet_hours(value: str) -> QuietHours | None:
    """'22:00-08:00' -> QuietHours; '' -> None (no quiet hours). Raises ValueError."""
    if value.strip() == "":
        return None
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if not match:
        raise ValueError(f"must look like '22:00-08:00' or be empty, got {value!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        start, end = time(h1, m1), time(h2, m2)
    except ValueError:
        raise ValueError(f"has an impossible time in {value!r}") from None
    if start == end:
        raise ValueError(f"start and end are equal in {value!r}; use '' for no quiet hours")
    return QuietHours(start, end)


@dataclass(frozen=True)
class StatementEntry:
    """One billing event's share of its monthly credit statement (rules/statements.py):
    the row of (account, period, currency) it adds to (storage/waves.py)."""

    account_id: str
    period: date
    currency: str
    # The balance the event reports (closing, if it is the latest), and the opening balance
    # it implies, for the first row of an account and currency.
    balance: Decimal | None
    at: datetime
    opening: Decimal | None
    top_up: Decimal | None = None
    payment: Decimal | None = None
    low: int = 0
    critical: int = 0
    limit: int = 0
