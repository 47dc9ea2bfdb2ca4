"""Ingest: verified, validated webhooks become event rows, their attachments, the
subscribers' new state and their notice rows, committed in one transaction (shared by the
webhooks arriving together, `group_commit`) before each sender is answered.

The subscribers' rows are locked first, so events of one account are applied one after the
other (two balance updates at once cannot both notify); the decision itself is the pure
`routing.route()`, fed with the facts looked up here, one statement per kind of fact for
all the events of a wave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from notifyd.catalogue.events import (
    AccountCreated,
    Category,
    Event,
)
from notifyd.intake.facts import (
    Incoming,
    IntakeRules,
    Levels,
    Step,
    account_of,
    look_up_facts,
)
from notifyd.model import NoticePlan, StatementEntry, Subscriber
from notifyd.rules import statements
from notifyd.rules.preferences import mode_for
from notifyd.rules.routing import Routing, route, subscriber_after
from notifyd.storage import attachments as attachment_store
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage import waves as wave_store
from notifyd.storage.attachments import StoredFile
from notifyd.storage.db import Conn
from notifyd.storage.notices import ClaimedNotice, ClaimTerms


@dataclass(frozen=True)
class Receipt:
    event_id: UUID
    duplicate: bool
    routing: Routing | None = None
    # The notices this host claimed as they were queued: to be sent once committed.
    claimed: tuple[ClaimedNotice, ...] = ()


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
        # Planned as in a shared commit: a generic plan made under other settings would be
        # cached for the connection's later batches.
        await conn.execute(wave_store.PLANS)
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


async def _ingest_wave(
    conn: Conn,
    wave: Sequence[tuple[int, Incoming]],
    receipts: dict[int, Receipt],
    terms: ClaimTerms | None,
) -> ClaimTerms | None:
    """Store, route and queue one wave: three round trips, whatever its size, but for rare
    cases (a replayed webhook id, attachments, account changes, a voicemail folding in its
    missed call, a low balance's spending rate). Returns the terms with the slots it left."""
    steps = [Step(n, incoming, uuid4()) for n, incoming in wave]
    fresh, levels = await _store(conn, steps, receipts)
    if not fresh:
        return terms
    routed = [(step, _route(step)) for step in fresh]
    planned = [(step, plan) for step, routing in routed for plan in routing.notices]
    # A notice held by a restriction is not due, whenever it was planned for.
    due_now = [plan.due_at <= step.incoming.now and not plan.restricted for step, plan in planned]
    claim = _claims(planned, due_now, terms)
    result = await wave_store.queue(
        conn,
        [
            (step.event_id, account_of(step), plan, step.incoming.rules.message_domain)
            for step, plan in planned
        ],
        due_now,
        levels,
        claim,
        terms,
        _decisions(routed),
        [entry for step in fresh if (entry := _statement_entry(step)) is not None],
    )
    await _settle(conn, routed, planned, result, receipts)
    if terms is None:
        return None
    return replace(terms, slots=terms.slots - len(result.claimed))


async def _store(
    conn: Conn, steps: list[Step], receipts: dict[int, Receipt]
) -> tuple[list[Step], Levels]:
    """Store the events and lock their subscribers (one statement); answer replayed webhook
    ids with their earlier event; apply the new ones to their subscribers and look up the
    facts routing needs. The new steps, and the low-credit levels to store."""
    locked = await wave_store.store_and_lock(
        conn,
        [(s.event_id, s.incoming.source, s.incoming.webhook_id, s.incoming.event) for s in steps],
        [account_of(s) for s in steps],
    )
    fresh: list[Step] = []
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
        step.before = locked.subscribers.get(account_of(step))
        step.after = await _apply_to_subscriber(
            conn, step.incoming.event, step.before, step.incoming.rules.erasure_key
        )
    return fresh, await look_up_facts(conn, [s for s in fresh if s.after is not None])


def _route(step: Step) -> Routing:
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


def _statement_entry(step: Step) -> StatementEntry | None:
    """What the event adds to its month's credit statement: only for a subscriber who chose
    statements (minimal data: no running record of anyone else's credit)."""
    subscriber, defaults = step.after, step.incoming.rules.defaults
    if subscriber is None:
        return None
    if mode_for(Category.STATEMENT, subscriber.preferences, defaults) == "off":
        return None
    crossed = step.facts.credit.notify if step.facts.credit is not None else None
    zone = subscriber.timezone or defaults.timezone
    return statements.entry(step.incoming.event, crossed, zone)


def _claims(
    planned: Sequence[tuple[Step, NoticePlan]], due_now: Sequence[bool], terms: ClaimTerms | None
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


def _decisions(routed: Sequence[tuple[Step, Routing]]) -> list[wave_store.Decision]:
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
    routed: Sequence[tuple[Step, Routing]],
    planned: Sequence[tuple[Step, NoticePlan]],
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


async def _apply_to_subscriber(
    conn: Conn, event: Event, current: Subscriber | None, erasure_key: bytes
) -> Subscriber | None:
    """The subscriber as the event leaves it, saved; an address it gives the account that
    was erased before goes back on the suppression list (storage/subscribers.py)."""
    after = subscriber_after(event, current)
    if after is None or after == current:
        return after
    save = (
        subscriber_store.upsert
        if isinstance(event.data, AccountCreated)
        else subscriber_store.update
    )
    return await save(conn, after, before=current, erasure_key=erasure_key)
