"""What a wave of events carries into routing: the webhooks waiting for their transaction,
the rules the config gives them, and the facts looked up for each (the previous address,
a queued missed call, recent emails, undeliverable addresses, low-credit crossings) in one
statement per wave. `ingest` runs the waves; `rules.routing` decides on the facts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from notifyd.catalogue.events import (
    MANDATORY_CATEGORIES,
    AccountUpdated,
    BalanceUpdated,
    CallMissed,
    CreditAdded,
    Event,
    VoicemailReceived,
)
from notifyd.model import Level, Skip, Subscriber
from notifyd.rules.preferences import all_addresses
from notifyd.rules.routing import OLDER_BALANCE, Facts
from notifyd.rules.thresholds import Crossing, cross, days_left, effective
from notifyd.settings import CallSettings, DefaultsSettings, Thresholds
from notifyd.storage import credit as credit_store
from notifyd.storage import notices as notice_store
from notifyd.storage import waves as wave_store
from notifyd.storage.attachments import StoredFile
from notifyd.storage.db import Conn

SPENDING_WINDOW = credit_store.SPENDING_WINDOW


# The low-credit levels a wave stores: (account, currency, level, balance, as of).
Levels = list[tuple[str, str, Level, Decimal, datetime]]


@dataclass(frozen=True)
class IntakeRules:
    """The parts of the config that decide what an event queues."""

    defaults: DefaultsSettings
    calls: CallSettings
    thresholds: Mapping[str, Thresholds]
    message_domain: str
    hourly_cap: int = 0
    # Keys the hashes of erased addresses (storage/erasure.py), for an account.created or
    # account.updated that brings one back. The daemon's Intake sets the host's key; b""
    # only in tests that bring no erased address.
    erasure_key: bytes = b""


@dataclass(frozen=True)
class Incoming:
    """One verified, validated webhook waiting for its transaction."""

    source: str
    webhook_id: str
    event: Event
    rules: IntakeRules
    now: datetime
    files: Sequence[StoredFile] = ()


@dataclass
class Step:
    """One event of a wave on its way through the wave's statements."""

    n: int
    incoming: Incoming
    event_id: UUID
    before: Subscriber | None = None
    after: Subscriber | None = None
    facts: Facts = field(default_factory=Facts)
    merged: list[UUID] = field(default_factory=list)


def _may_storm(event: Event, rules: IntakeRules) -> bool:
    """Whether routing needs the address's recent emails (bursts of calls, hourly caps)."""
    category = event.data.category
    if category is None or category in MANDATORY_CATEGORIES:
        return False
    burst = isinstance(event.data, CallMissed) and rules.calls.burst_window_seconds > 0
    return burst or rules.hourly_cap > 0


async def look_up_facts(conn: Conn, steps: Sequence[Step]) -> Levels:
    """Look up what routing needs for each step of a wave (of subscribers that exist), in
    one statement for the whole wave but for rare cases (a voicemail folding in its missed
    call, a low balance's spending rate); returns the credit states to save."""
    if not steps:
        return []
    calls: list[Step] = []
    for step in steps:
        before = step.before
        data = step.incoming.event.data
        if isinstance(data, AccountUpdated):
            changed = before is not None and data.email is not None and data.email != before.email
            step.facts = Facts(previous_email=before.email if changed and before else None)
        elif isinstance(data, CallMissed):
            calls.append(step)
        elif isinstance(data, VoicemailReceived) and data.call_id:
            missed = await notice_store.queued_missed_call(conn, data.account_id, data.call_id)
            if missed is not None:
                step.merged, call = missed
                keep = ("started_at", "called_number", "extension", "ring_seconds")
                step.facts = Facts(merged_call={key: call.get(key) for key in keep})
    balances = []
    for step in steps:
        if isinstance(step.incoming.event.data, BalanceUpdated | CreditAdded):
            balance, currency = _balance(step)
            if currency in step.incoming.rules.thresholds:
                balances.append((step, balance, currency))
            else:
                step.facts = replace(step.facts, credit_skip=_no_thresholds(currency))
    addressed = {
        step.n: {a.lower() for a in all_addresses(step.after.preferences, step.after.email)}
        for step in steps
        if step.after is not None and step.incoming.event.data.category is not None
    }
    storms = [s for s in steps if _may_storm(s.incoming.event, s.incoming.rules)]
    dedupe_keys = [(account_of(s), f"voicemail:{_call_id(s)}") for s in calls]
    found = await wave_store.facts(
        conn,
        addresses=set[str]().union(*addressed.values()),
        recent=[(account_of(s), _category(s)) for s in storms],
        # One "now" for the wave: its events arrived within the same few milliseconds.
        now=steps[0].incoming.now,
        dedupe_keys=dedupe_keys,
        credit=[(account_of(step), currency) for step, _, currency in balances],
    )

    for step, key in zip(calls, dedupe_keys, strict=True):
        step.facts = Facts(voicemail_exists=key in found.notified)
    for step in steps:
        among = found.undeliverable & addressed.get(step.n, set())
        if among:
            step.facts = replace(step.facts, undeliverable=frozenset(among))
    for step in storms:
        emails = found.recent.get((account_of(step), _category(step)), {})
        step.facts = replace(step.facts, recent=emails)
    return await _credit(conn, balances, found.credit)


def _no_thresholds(currency: str) -> Skip:
    return Skip("no_thresholds", f"no low-credit thresholds are configured for {currency}")


def _call_id(step: Step) -> str:
    data = step.incoming.event.data
    assert isinstance(data, CallMissed)
    return data.call_id


def _category(step: Step) -> str:
    category = step.incoming.event.data.category
    assert category is not None
    return category.value


async def _credit(
    conn: Conn,
    balances: Sequence[tuple[Step, Decimal, str]],
    stored: dict[tuple[str, str], tuple[Level, datetime | None]],
) -> list[tuple[str, str, Level, Decimal, datetime]]:
    """Threshold crossings of the wave's balances against the stored levels; the new
    states to save. The "days left" estimate only for a balance that notifies."""
    saved: list[tuple[str, str, Level, Decimal, datetime]] = []
    for step, balance, currency in balances:
        event, subscriber = step.incoming.event, step.after
        assert subscriber is not None
        level, as_of = stored[(account_of(step), currency)]
        if as_of is not None and event.timestamp < as_of:
            # An older balance arriving late says nothing about now.
            step.facts = replace(step.facts, credit_skip=OLDER_BALANCE)
            continue
        limits = effective(
            step.incoming.rules.thresholds[currency], subscriber.low_credit_threshold
        )
        crossing = cross(level, balance, limits)
        top_up = isinstance(event.data, CreditAdded)
        if top_up and crossing.notify is not None:
            # A top-up may re-arm the notices but never sends a low-credit one itself.
            crossing = Crossing(level, None, None)
        saved.append((account_of(step), currency, crossing.level, balance, event.timestamp))
        if top_up:
            continue
        if crossing.notify is None:
            step.facts = replace(step.facts, credit=crossing)
            continue
        now = step.incoming.now
        since = now - SPENDING_WINDOW
        history = await credit_store.recent(conn, account_of(step), currency, since)
        if event.timestamp >= since:  # this balance is saved with the wave's notices
            history = sorted([*history, (event.timestamp, balance)], key=lambda h: h[0])
        left = days_left(history, balance, now, SPENDING_WINDOW)
        step.facts = replace(step.facts, credit=crossing, credit_days_left=left)
    return saved


def account_of(step: Step) -> str:
    return step.incoming.event.account_id


def _balance(step: Step) -> tuple[Decimal, str]:
    """(the balance the event reports, its currency)."""
    data = step.incoming.event.data
    if isinstance(data, BalanceUpdated):
        return Decimal(data.balance), data.currency
    assert isinstance(data, CreditAdded)
    return Decimal(data.new_balance), data.currency
