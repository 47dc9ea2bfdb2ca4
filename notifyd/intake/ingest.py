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

from notifyd.catalogue.events import (
    MANDATORY_CATEGORIES,
    AccountCreated,
    AccountUpdated,
    BalanceUpdated,
    CallMissed,
    CreditAdded,
    Event,
    VoicemailReceived,
)
from notifyd.model import Level, NoticePlan, Skip, Subscriber
from notifyd.rules.preferences import all_addresses
from notifyd.rules.routing import OLDER_BALANCE, Facts, Routing, route, subscriber_after
from notifyd.rules.thresholds import Crossing, cross, days_left, effective
from notifyd.settings import CallSettings, DefaultsSettings, Thresholds
from notifyd.storage import attachments as attachment_store
from notifyd.storage import credit as credit_store
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage import waves as wave_store
from notifyd.storage.attachments import StoredFile
from notifyd.storage.db import Conn
from notifyd.storage.notices import ClaimedNotice, ClaimTerms

SPENDING_WINDOW = timedelta(days=7)


# The low-credit levels a wave stores: (account, currency, level, balance, as of).
Levels = list[tuple[str, str, Level, Decimal, datetime]]


@dataclass(frozen=True)
class Receipt:
    event_id: UUID
    duplicate: bool
    routing: Routing | None = None
    # The notices this host claimed as they were queued: to be sent once committed.
    claimed: tuple[ClaimedNotice, ...] = ()


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


async def ingest_batch(
    conn: Conn, batch: Sequence[Incoming], terms: ClaimTerms | None = None
) -> list[Receipt]:
    """The statements of several webhooks, in the caller's transaction, a receipt each.

    They are applied in waves in which no account appears twice: each wave's reads and
    writes are one statement for all of its events (a round trip costs more than the rows),
    and the events of one account still apply one after the other, in the order they came.
    Notices due now are claimed under `terms` as they are queued, as many as its slots
    (the rest wait for a worker's claim, as without terms).
    """
    receipts: dict[int, Receipt] = {}
    for wave in _waves(batch):
        terms = await _ingest_wave(conn, wave, receipts, terms)
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
    conn: Conn,
    wave: Sequence[tuple[int, Incoming]],
    receipts: dict[int, Receipt],
    terms: ClaimTerms | None,
) -> ClaimTerms | None:
    """Store, route and queue one wave: three round trips, whatever its size, but for rare
    cases (a replayed webhook id, attachments, account changes, a voicemail folding in its
    missed call, a low balance's spending rate). Returns the terms with the slots it left."""
    steps = [_Step(n, incoming, uuid4()) for n, incoming in wave]
    fresh, levels = await _store(conn, steps, receipts)
    if not fresh:
        return terms
    routed = [(step, _route(step)) for step in fresh]
    planned = [(step, plan) for step, routing in routed for plan in routing.notices]
    due_now = [plan.due_at <= step.incoming.now for step, plan in planned]
    claim = _claims(planned, due_now, terms)
    result = await wave_store.queue(
        conn,
        [
            (step.event_id, _account(step), plan, step.incoming.rules.message_domain)
            for step, plan in planned
        ],
        due_now,
        levels,
        claim,
        terms,
        _decisions(routed),
    )
    await _settle(conn, routed, planned, result, receipts)
    if terms is None:
        return None
    return replace(terms, slots=terms.slots - len(result.claimed))


async def _store(
    conn: Conn, steps: list[_Step], receipts: dict[int, Receipt]
) -> tuple[list[_Step], Levels]:
    """Store the events and lock their subscribers (one statement); answer replayed webhook
    ids with their earlier event; apply the new ones to their subscribers and look up the
    facts routing needs. The new steps, and the low-credit levels to store."""
    locked = await wave_store.store_and_lock(
        conn,
        [(s.event_id, s.incoming.source, s.incoming.webhook_id, s.incoming.event) for s in steps],
        [_account(s) for s in steps],
    )
    fresh: list[_Step] = []
    for step in steps:
        if step.event_id in locked.stored:
            fresh.append(step)
        else:
            earlier = await event_store.find_receipt(
                conn, step.incoming.source, step.incoming.webhook_id
            )
            receipts[step.n] = Receipt(event_id=earlier, duplicate=True)
    if not fresh:
        return [], []
    for step in fresh:
        if step.incoming.files:
            await attachment_store.insert(conn, step.event_id, list(step.incoming.files))
        step.before = locked.subscribers.get(_account(step))
        step.after = await _apply_to_subscriber(conn, step.incoming.event, step.before)
    return fresh, await _facts(conn, [s for s in fresh if s.after is not None])


def _route(step: _Step) -> Routing:
    rules = step.incoming.rules
    return route(
        step.incoming.event,
        step.after,
        step.facts,
        rules.defaults,
        rules.calls,
        step.incoming.now,
        hourly_cap=rules.hourly_cap,
    )


def _claims(
    planned: Sequence[tuple[_Step, NoticePlan]], due_now: Sequence[bool], terms: ClaimTerms | None
) -> list[bool]:
    """Which notices this commit claims, to be sent as soon as it commits: emails due now,
    while the worker's slots last."""
    if terms is None:
        return []
    claim: list[bool] = []
    slots = terms.slots
    for (_step, plan), now in zip(planned, due_now, strict=True):
        take = slots > 0 and now and plan.digest is None and terms.takes(plan.recipient)
        claim.append(take)
        slots -= take
    return claim


def _decisions(routed: Sequence[tuple[_Step, Routing]]) -> list[wave_store.Decision]:
    """Why an event queues nothing is stored with it, by the same statement: what routing
    said, or (known to the statement only) that its dedupe keys were all taken."""
    return [
        wave_store.Decision(step.event_id, skip, unless_queued=not routing.skipped)
        for step, routing in routed
        for skip in (routing.skipped or routing.if_deduplicated,)
        if skip is not None
    ]


async def _settle(
    conn: Conn,
    routed: Sequence[tuple[_Step, Routing]],
    planned: Sequence[tuple[_Step, NoticePlan]],
    result: wave_store.Queued,
    receipts: dict[int, Receipt],
) -> None:
    """Each event's receipt: the notices it queued (none if their keys were taken), those
    claimed; a voicemail's folded-in missed call is marked merged."""
    queued: dict[int, list[UUID]] = {step.n: [] for step, _routing in routed}
    for (step, _plan), notice_id in zip(planned, result.ids, strict=True):
        if notice_id is not None:
            queued[step.n].append(notice_id)
    claimed: dict[UUID, ClaimedNotice] = {notice.id: notice for notice in result.claimed}
    for step, routing in routed:
        if step.merged and queued[step.n]:
            await notice_store.mark_merged(
                conn, step.merged, f"told in the voicemail email of event {step.event_id}"
            )
        if not queued[step.n] and routing.notices:
            routing = Routing((), skipped=routing.if_deduplicated)
        receipts[step.n] = Receipt(
            event_id=step.event_id,
            duplicate=False,
            routing=routing,
            claimed=tuple(claimed[i] for i in queued[step.n] if i in claimed),
        )


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


async def _facts(conn: Conn, steps: Sequence[_Step]) -> Levels:
    """Look up what routing needs for each step of a wave (of subscribers that exist), in
    one statement for the whole wave but for rare cases (a voicemail folding in its missed
    call, a low balance's spending rate); returns the credit states to save."""
    if not steps:
        return []
    calls: list[_Step] = []
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
    dedupe_keys = [(_account(s), f"voicemail:{_call_id(s)}") for s in calls]
    found = await wave_store.facts(
        conn,
        addresses=set[str]().union(*addressed.values()),
        recent=[(_account(s), _category(s)) for s in storms],
        # One "now" for the wave: its events arrived within the same few milliseconds.
        now=steps[0].incoming.now,
        dedupe_keys=dedupe_keys,
        credit=[(_account(step), currency) for step, _, currency in balances],
    )

    for step, key in zip(calls, dedupe_keys, strict=True):
        step.facts = Facts(voicemail_exists=key in found.notified)
    for step in steps:
        among = found.undeliverable & addressed.get(step.n, set())
        if among:
            step.facts = replace(step.facts, undeliverable=frozenset(among))
    for step in storms:
        emails = found.recent.get((_account(step), _category(step)), {})
        step.facts = replace(step.facts, recent=emails)
    return await _credit(conn, balances, found.credit)


def _no_thresholds(currency: str) -> Skip:
    return Skip("no_thresholds", f"no low-credit thresholds are configured for {currency}")


def _call_id(step: _Step) -> str:
    data = step.incoming.event.data
    assert isinstance(data, CallMissed)
    return data.call_id


def _category(step: _Step) -> str:
    category = step.incoming.event.data.category
    assert category is not None
    return category.value


async def _credit(
    conn: Conn,
    balances: Sequence[tuple[_Step, Decimal, str]],
    stored: dict[tuple[str, str], tuple[Level, datetime | None]],
) -> list[tuple[str, str, Level, Decimal, datetime]]:
    """Threshold crossings of the wave's balances against the stored levels; the new
    states to save. The "days left" estimate only for a balance that notifies."""
    saved: list[tuple[str, str, Level, Decimal, datetime]] = []
    for step, balance, currency in balances:
        event, subscriber = step.incoming.event, step.after
        assert subscriber is not None
        level, as_of = stored[(_account(step), currency)]
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
        saved.append((_account(step), currency, crossing.level, balance, event.timestamp))
        if top_up:
            continue
        if crossing.notify is None:
            step.facts = replace(step.facts, credit=crossing)
            continue
        now = step.incoming.now
        since = now - SPENDING_WINDOW
        history = await credit_store.recent(conn, _account(step), currency, since)
        if event.timestamp >= since:  # this balance is saved with the wave's notices
            history = sorted([*history, (event.timestamp, balance)], key=lambda h: h[0])
        left = days_left(history, balance, now, SPENDING_WINDOW)
        step.facts = replace(step.facts, credit=crossing, credit_days_left=left)
    return saved


def _account(step: _Step) -> str:
    return step.incoming.event.account_id


def _balance(step: _Step) -> tuple[Decimal, str]:
    """(the balance the event reports, its currency)."""
    data = step.incoming.event.data
    if isinstance(data, BalanceUpdated):
        return Decimal(data.balance), data.currency
    assert isinstance(data, CreditAdded)
    return Decimal(data.new_balance), data.currency
