"""Ingest: verified, validated webhooks become event rows, their attachments, the
subscribers' new state and their notice rows, committed in one transaction (shared by the
webhooks arriving together, `group_commit`) before each sender is answered.

The subscribers' rows are locked first, so events of one account are applied one after the
other (two balance updates at once cannot both notify); the decision itself is the pure
`routing.route()`, fed with the facts looked up here, one statement per kind of fact for
all the events of a wave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import asyncpg

from notifyd.events import (
    MANDATORY_CATEGORIES,
    AccountCreated,
    AccountUpdated,
    BalanceUpdated,
    CallMissed,
    CreditAdded,
    Event,
    VoicemailReceived,
)
from notifyd.preferences import all_addresses
from notifyd.routing import Facts, NoticePlan, Routing, Subscriber, route, subscriber_after
from notifyd.settings import CallSettings, DefaultsSettings, Thresholds
from notifyd.storage import addresses as address_store
from notifyd.storage import attachments as attachment_store
from notifyd.storage import credit as credit_store
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.attachments import StoredFile
from notifyd.storage.db import Conn
from notifyd.thresholds import Crossing, Level, cross, days_left, effective

SPENDING_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class Receipt:
    event_id: UUID
    duplicate: bool
    routing: Routing | None = None


@dataclass(frozen=True)
class IntakeRules:
    """The parts of the config that decide what an event queues."""

    defaults: DefaultsSettings
    calls: CallSettings
    thresholds: Mapping[str, Thresholds]
    message_domain: str
    hourly_cap: int = 0


@dataclass(frozen=True)
class Incoming:
    """One verified, validated webhook waiting for its transaction."""

    source: str
    webhook_id: str
    event: Event
    rules: IntakeRules
    now: datetime
    files: Sequence[StoredFile] = ()


async def ingest(
    pool: asyncpg.Pool,
    *,
    source: str,
    webhook_id: str,
    event: Event,
    rules: IntakeRules,
    now: datetime,
    files: Sequence[StoredFile] = (),
) -> Receipt:
    """One webhook in a transaction of its own (the daemon shares commits: `ingest_batch`)."""
    async with pool.acquire() as conn, conn.transaction():
        (receipt,) = await ingest_batch(
            conn, [Incoming(source, webhook_id, event, rules, now, tuple(files))]
        )
        return receipt


async def ingest_batch(conn: Conn, batch: Sequence[Incoming]) -> list[Receipt]:
    """The statements of several webhooks, in the caller's transaction, a receipt each.

    They are applied in waves in which no account appears twice: each wave's reads and
    writes are one statement for all of its events (a round trip costs more than the rows),
    and the events of one account still apply one after the other, in the order they came.
    """
    receipts: dict[int, Receipt] = {}
    wake = False
    for wave in _waves(batch):
        wake = await _ingest_wave(conn, wave, receipts) or wake
    if wake:
        await notice_store.wake_workers(conn)
    return [receipts[n] for n in range(len(batch))]


def _waves(batch: Sequence[Incoming]) -> list[list[tuple[int, Incoming]]]:
    """The n-th event of each account goes in the n-th wave."""
    waves: list[list[tuple[int, Incoming]]] = []
    seen: dict[str, int] = {}
    for n, incoming in enumerate(batch):
        account = incoming.event.account_id
        k = seen.get(account, 0)
        seen[account] = k + 1
        if k == len(waves):
            waves.append([])
        waves[k].append((n, incoming))
    return waves


@dataclass
class _Step:
    """One event of a wave on its way through the wave's statements."""

    n: int
    incoming: Incoming
    event_id: UUID
    before: Subscriber | None = None
    after: Subscriber | None = None
    facts: Facts = field(default_factory=Facts)
    merged: list[UUID] = field(default_factory=list)


async def _ingest_wave(
    conn: Conn, wave: Sequence[tuple[int, Incoming]], receipts: dict[int, Receipt]
) -> bool:
    """Store, route and queue one wave; whether a notice is due now."""
    steps = [_Step(n, incoming, uuid4()) for n, incoming in wave]
    stored = await event_store.store_events(
        conn,
        [(s.event_id, s.incoming.source, s.incoming.webhook_id, s.incoming.event) for s in steps],
    )
    fresh: list[_Step] = []
    for step in steps:
        if step.event_id in stored:
            fresh.append(step)
        else:
            earlier = await event_store.find_receipt(
                conn, step.incoming.source, step.incoming.webhook_id
            )
            receipts[step.n] = Receipt(event_id=earlier, duplicate=True)
    if not fresh:
        return False
    for step in fresh:
        if step.incoming.files:
            await attachment_store.insert(conn, step.event_id, list(step.incoming.files))

    current = await subscriber_store.lock_many(conn, [s.incoming.event.account_id for s in fresh])
    for step in fresh:
        step.before = current.get(step.incoming.event.account_id)
        step.after = await _apply_to_subscriber(conn, step.incoming.event, step.before)
    await _facts(conn, [s for s in fresh if s.after is not None])

    routed = [
        (
            step,
            route(
                step.incoming.event,
                step.after,
                step.facts,
                step.incoming.rules.defaults,
                step.incoming.rules.calls,
                step.incoming.now,
                hourly_cap=step.incoming.rules.hourly_cap,
            ),
        )
        for step in fresh
    ]
    queued = await _queue(conn, routed)
    wake = False
    for step, routing in routed:
        ids = queued[step.n]
        if step.merged and ids:
            await notice_store.mark_merged(
                conn, step.merged, f"told in the voicemail email of event {step.event_id}"
            )
        if ids and any(plan.due_at <= step.incoming.now for plan in routing.notices):
            wake = True
        if not ids and routing.notices:
            routing = Routing((), skipped="already notified: another leg of the same call")
        receipts[step.n] = Receipt(event_id=step.event_id, duplicate=False, routing=routing)
    return wake


async def _queue(conn: Conn, routed: Sequence[tuple[_Step, Routing]]) -> dict[int, list[UUID]]:
    """Insert every notice of the wave; per step, the ids of those that were new."""
    queued: dict[int, list[UUID]] = {step.n: [] for step, _ in routed}
    by_domain: dict[str, list[tuple[_Step, NoticePlan]]] = {}
    for step, routing in routed:
        for plan in routing.notices:
            by_domain.setdefault(step.incoming.rules.message_domain, []).append((step, plan))
    for domain, planned in by_domain.items():
        ids = await notice_store.insert_planned(
            conn,
            [(step.event_id, step.incoming.event.account_id, plan) for step, plan in planned],
            domain,
        )
        for (step, _plan), notice_id in zip(planned, ids, strict=True):
            if notice_id is not None:
                queued[step.n].append(notice_id)
    return queued


def _may_storm(event: Event, rules: IntakeRules) -> bool:
    """Whether routing needs the address's recent emails (bursts of calls, hourly caps)."""
    category = event.data.category
    if category is None or category in MANDATORY_CATEGORIES:
        return False
    burst = isinstance(event.data, CallMissed) and rules.calls.burst_window_seconds > 0
    return burst or rules.hourly_cap > 0


async def _apply_to_subscriber(
    conn: Conn, event: Event, current: Subscriber | None
) -> Subscriber | None:
    after = subscriber_after(event, current)
    if after is None or after == current:
        return after
    if isinstance(event.data, AccountCreated):
        return await subscriber_store.upsert(conn, after)
    return await subscriber_store.update(conn, after)


async def _facts(conn: Conn, steps: Sequence[_Step]) -> None:
    """Look up what routing needs for each step of a wave (of subscribers that exist), a
    statement per kind of fact for the whole wave."""
    calls: list[_Step] = []
    credits: list[_Step] = []
    for step in steps:
        before = step.before
        data = step.incoming.event.data
        if isinstance(data, AccountUpdated):
            changed = before is not None and data.email is not None and data.email != before.email
            step.facts = Facts(previous_email=before.email if changed and before else None)
        elif isinstance(data, CallMissed):
            calls.append(step)
        elif isinstance(data, VoicemailReceived) and data.call_id:
            found = await notice_store.queued_missed_call(conn, data.account_id, data.call_id)
            if found is not None:
                step.merged, call = found
                keep = ("started_at", "called_number", "extension", "ring_seconds")
                step.facts = Facts(merged_call={key: call.get(key) for key in keep})
        elif isinstance(data, BalanceUpdated | CreditAdded):
            credits.append(step)

    if calls:
        keys = [(s.incoming.event.account_id, f"voicemail:{_call_id(s)}") for s in calls]
        present = await notice_store.dedupe_keys_present(conn, keys)
        for step, key in zip(calls, keys, strict=True):
            step.facts = Facts(voicemail_exists=key in present)
    await _credit(conn, credits)

    addressed = [s for s in steps if s.incoming.event.data.category is not None]
    addresses = {
        s.n: {a.lower() for a in all_addresses(s.after.preferences, s.after.email)}
        for s in addressed
        if s.after is not None
    }
    undeliverable = await address_store.undeliverable_among(
        conn, set[str]().union(*addresses.values())
    )
    if undeliverable:
        for step in addressed:
            among = undeliverable & addresses[step.n]
            if among:
                step.facts = replace(step.facts, undeliverable=among)

    storms = [s for s in steps if _may_storm(s.incoming.event, s.incoming.rules)]
    if not storms:
        return
    wanted = [(_account(s), _category(s)) for s in storms]
    # One "now" for the wave: its events arrived within the same few milliseconds.
    recent = await notice_store.recent_emails(conn, wanted, storms[0].incoming.now)
    for step, key in zip(storms, wanted, strict=True):
        step.facts = replace(step.facts, recent=recent.get(key, {}))


def _call_id(step: _Step) -> str:
    data = step.incoming.event.data
    assert isinstance(data, CallMissed)
    return data.call_id


def _category(step: _Step) -> str:
    category = step.incoming.event.data.category
    assert category is not None
    return category.value


async def _credit(conn: Conn, steps: Sequence[_Step]) -> None:
    """Threshold crossings of the wave's balances against the stored levels, which are
    updated; the "days left" estimate only for a balance that notifies."""
    configured = [
        (step, *_balance(step))
        for step in steps
        if _balance(step)[1] in step.incoming.rules.thresholds
    ]
    if not configured:
        return
    levels = await credit_store.lock_many(
        conn, [(_account(step), currency) for step, _, currency in configured]
    )
    saved: list[tuple[str, str, Level, Decimal, datetime]] = []
    notifying: list[tuple[_Step, Crossing, Decimal, str]] = []
    for step, balance, currency in configured:
        event, subscriber = step.incoming.event, step.after
        assert subscriber is not None
        level, as_of = levels[(_account(step), currency)]
        if as_of is not None and event.timestamp < as_of:
            continue  # an older balance arriving late says nothing about now
        limits = effective(
            step.incoming.rules.thresholds[currency], subscriber.low_credit_threshold
        )
        crossing = cross(level, balance, limits)
        top_up = isinstance(event.data, CreditAdded)
        if top_up and crossing.notify is not None:
            # A top-up may re-arm the notices but never sends a low-credit one itself.
            crossing = Crossing(level, None, None)
        saved.append((_account(step), currency, crossing.level, balance, event.timestamp))
        if top_up:
            continue
        if crossing.notify is None:
            step.facts = Facts(credit=crossing)
        else:
            notifying.append((step, crossing, balance, currency))
    await credit_store.save_many(conn, saved)
    for step, crossing, balance, currency in notifying:
        now = step.incoming.now
        history = await credit_store.recent(conn, _account(step), currency, now - SPENDING_WINDOW)
        left = days_left(history, balance, now, SPENDING_WINDOW)
        step.facts = Facts(credit=crossing, credit_days_left=left)


def _account(step: _Step) -> str:
    return step.incoming.event.account_id


def _balance(step: _Step) -> tuple[Decimal, str]:
    """(the balance the event reports, its currency)."""
    data = step.incoming.event.data
    if isinstance(data, BalanceUpdated):
        return Decimal(data.balance), data.currency
    assert isinstance(data, CreditAdded)
    return Decimal(data.new_balance), data.currency
