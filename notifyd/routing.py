"""Pure routing: (event, subscriber, config, now) -> the notices to queue, with reasons.

The reasons are stored on each notice, so "why did I get this email, and why then?"
has an answer later. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notifyd.events import (
    MANDATORY_CATEGORIES,
    AccountCreated,
    Category,
    Event,
)
from notifyd.schedule import quiet_hours_end
from notifyd.settings import DefaultsSettings


@dataclass(frozen=True)
class Subscriber:
    account_id: str
    email: str
    name: str | None = None
    username: str | None = None
    language: str | None = None
    timezone: str | None = None
    closed_at: datetime | None = None


@dataclass(frozen=True)
class NoticePlan:
    kind: str
    category: Category
    recipient: str
    language: str
    timezone: str
    due_at: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Routing:
    notices: tuple[NoticePlan, ...]
    # Why nothing was queued, when nothing was.
    skipped: str | None = None


# Notices that answer something the subscriber just did, or that cannot wait, go out even in
# quiet hours. Everything else that is not mandatory waits for the quiet hours to end.
IMMEDIATE_KINDS = frozenset({"account.created"})


def subscriber_after(event: Event, current: Subscriber | None) -> Subscriber | None:
    """The subscriber as this event leaves it (account.created creates or refreshes it)."""
    data = event.data
    if isinstance(data, AccountCreated):
        return Subscriber(
            account_id=data.account_id,
            email=data.email,
            name=data.name if data.name is not None else (current.name if current else None),
            username=data.username,
            language=data.language or (current.language if current else None),
            timezone=data.timezone or (current.timezone if current else None),
        )
    return current


def route(
    event: Event, subscriber: Subscriber | None, defaults: DefaultsSettings, now: datetime
) -> Routing:
    category = event.data.category
    if category is None:
        return Routing((), skipped="event updates the subscriber only")
    if subscriber is None:
        return Routing((), skipped="unknown account: no account.created received for it")
    mandatory = category in MANDATORY_CATEGORIES
    if subscriber.closed_at is not None and not mandatory:
        return Routing((), skipped="account closed: only mandatory notices are sent")

    language = subscriber.language or defaults.language
    zone = subscriber.timezone or defaults.timezone
    reasons = [f"category {category.value}" + (" (mandatory)" if mandatory else "")]
    due_at = now
    if event.type in IMMEDIATE_KINDS or category is Category.SECURITY:
        reasons.append("sent at once: never waits for quiet hours")
    else:
        end = quiet_hours_end(now, defaults.quiet_hours, zone)
        if end is not None:
            due_at = end
            reasons.append(f"quiet hours {defaults.quiet_hours} in {zone}: held until they end")
        else:
            reasons.append("outside quiet hours: sent at once")
    plan = NoticePlan(
        kind=event.type,
        category=category,
        recipient=subscriber.email,
        language=language,
        timezone=zone,
        due_at=due_at,
        reasons=tuple(reasons),
    )
    return Routing((plan,))
