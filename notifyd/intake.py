"""Ingest: one verified, validated webhook becomes an event row, its attachments, the
subscriber's new state and its notice rows, committed in one transaction before the sender
is answered.

The subscriber's row is locked first, so events of one account are applied one after the
other (two balance updates at once cannot both notify); the decision itself is the pure
`routing.route()`, fed with the facts looked up here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
from notifyd.routing import Facts, Routing, Subscriber, route, subscriber_after
from notifyd.settings import CallSettings, DefaultsSettings, Thresholds
from notifyd.storage import addresses as address_store
from notifyd.storage import attachments as attachment_store
from notifyd.storage import credit as credit_store
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.attachments import StoredFile
from notifyd.storage.db import Conn
from notifyd.thresholds import Crossing, cross, days_left, effective

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
    """One webhook in a transaction of its own (the daemon shares commits: `ingest_in`)."""
    async with pool.acquire() as conn, conn.transaction():
        return await ingest_in(
            conn,
            source=source,
            webhook_id=webhook_id,
            event=event,
            rules=rules,
            now=now,
            files=files,
        )


async def ingest_in(
    conn: Conn,
    *,
    source: str,
    webhook_id: str,
    event: Event,
    rules: IntakeRules,
    now: datetime,
    files: Sequence[StoredFile] = (),
) -> Receipt:
    """The statements of one webhook, in the caller's transaction."""
    event_id = uuid4()
    earlier = await event_store.store_event(conn, event_id, source, webhook_id, event)
    if earlier is not None:
        return Receipt(event_id=earlier, duplicate=True)
    await attachment_store.insert(conn, event_id, list(files))

    current = await subscriber_store.get(conn, event.account_id, lock=True)
    subscriber = await _apply_to_subscriber(conn, event, current)
    facts, merged_notices = await _facts(conn, event, current, subscriber, rules, now)
    if subscriber is not None and event.data.category is not None:
        undeliverable = await address_store.undeliverable_among(
            conn, all_addresses(subscriber.preferences, subscriber.email)
        )
        if undeliverable:
            facts = replace(facts, undeliverable=undeliverable)
    if subscriber is not None and _may_storm(event, rules):
        category = event.data.category
        assert category is not None
        recent = await notice_store.recent_emails(conn, event.account_id, category.value, now)
        facts = replace(facts, recent=recent)
    routing = route(
        event, subscriber, facts, rules.defaults, rules.calls, now, hourly_cap=rules.hourly_cap
    )
    queued = await notice_store.insert(
        conn, event_id, event.account_id, routing.notices, rules.message_domain
    )
    if merged_notices and queued:
        await notice_store.mark_merged(
            conn, merged_notices, f"told in the voicemail email of event {event_id}"
        )
    if queued and any(plan.due_at <= now for plan in routing.notices):
        await notice_store.wake_workers(conn)
    if not queued and routing.notices:
        routing = Routing((), skipped="already notified: another leg of the same call")
    return Receipt(event_id=event_id, duplicate=False, routing=routing)


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


async def _facts(
    conn: Conn,
    event: Event,
    before: Subscriber | None,
    after: Subscriber | None,
    rules: IntakeRules,
    now: datetime,
) -> tuple[Facts, list[UUID]]:
    """Look up what routing needs; also returns missed-call notices to fold into this one."""
    data = event.data
    if after is None:
        return Facts(), []
    if isinstance(data, AccountUpdated):
        changed = before is not None and data.email is not None and data.email != before.email
        return Facts(previous_email=before.email if changed and before else None), []
    if isinstance(data, CallMissed):
        exists = await notice_store.has_dedupe_key(
            conn, data.account_id, f"voicemail:{data.call_id}"
        )
        return Facts(voicemail_exists=exists), []
    if isinstance(data, VoicemailReceived) and data.call_id:
        found = await notice_store.queued_missed_call(conn, data.account_id, data.call_id)
        if found is None:
            return Facts(), []
        notice_ids, call = found
        keep = ("started_at", "called_number", "extension", "ring_seconds")
        return Facts(merged_call={key: call.get(key) for key in keep}), notice_ids
    if isinstance(data, BalanceUpdated | CreditAdded):
        balance = Decimal(data.balance if isinstance(data, BalanceUpdated) else data.new_balance)
        crossing, left = await _credit(conn, event, after, balance, data.currency, rules, now)
        # A top-up may re-arm the notices but never sends a low-credit one itself.
        return (
            Facts(credit=crossing, credit_days_left=left)
            if isinstance(data, BalanceUpdated)
            else Facts()
        ), []
    return Facts(), []


async def _credit(
    conn: Conn,
    event: Event,
    subscriber: Subscriber,
    balance: Decimal,
    currency: str,
    rules: IntakeRules,
    now: datetime,
) -> tuple[Crossing | None, int | None]:
    admin = rules.thresholds.get(currency)
    if admin is None:
        return None, None
    limits = effective(admin, subscriber.low_credit_threshold)
    level, as_of = await credit_store.lock(conn, subscriber.account_id, currency)
    if as_of is not None and event.timestamp < as_of:
        # An older balance arriving late says nothing about now.
        return None, None
    crossing = cross(level, balance, limits)
    if isinstance(event.data, CreditAdded) and crossing.notify is not None:
        crossing = Crossing(level, None, None)
    await credit_store.save(
        conn, subscriber.account_id, currency, crossing.level, balance, event.timestamp
    )
    if crossing.notify is None:
        return crossing, None
    history = await credit_store.recent(
        conn, subscriber.account_id, currency, now - SPENDING_WINDOW
    )
    return crossing, days_left(history, balance, now, SPENDING_WINDOW)
