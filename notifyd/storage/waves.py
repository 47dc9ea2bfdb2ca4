"""A wave of webhooks in three round trips (`sql/waves.sql`): store and lock, look up the
facts, queue. A wave has each account at most once, so its rows never depend on each
other; `intake` applies the waves of a shared commit one after the other."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from notifyd.catalogue.events import MANDATORY_CATEGORIES, Event, stored_fields
from notifyd.model import Level, NoticePlan, RecentEmails, Skip, StatementEntry, Subscriber
from notifyd.storage import queries
from notifyd.storage.db import Conn
from notifyd.storage.notices import (
    CHANNEL,
    ClaimedNotice,
    ClaimTerms,
    claimed_notice,
    notice_columns,
)
from notifyd.storage.subscribers import subscriber_of

SQL = queries.load("waves")

# How the transaction of a wave's statements begins (group_commit.py's BEGIN): every
# statement a wave runs keeps one generic plan a connection instead of being planned for
# every wave (planning `facts` alone cost PostgreSQL about 80 us of CPU a webhook). A
# generic plan is made once, from the table sizes of that moment, and kept until an
# ANALYZE: made on empty tables it would read them whole as they grow (a day of webhooks, a
# fan-out's notices), so every table they read is read by `= ANY` or `=` on its key, and
# sequential scans are off while they are planned, which leaves the planner only index
# lookups (tests/integration/test_wave_plans.py walks each plan). Both are SET LOCAL: the
# connection goes back to the pool as it came.
PLANS = "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off"


@dataclass(frozen=True)
class Locked:
    # The events stored: those whose webhook id was new.
    stored: frozenset[UUID]
    subscribers: dict[str, Subscriber]


@dataclass(frozen=True)
class WaveFacts:
    undeliverable: frozenset[str]
    # (account, dedupe key) pairs that already have a notice.
    notified: frozenset[tuple[str, str]]
    # (account, currency) -> the stored level and the time of the balance it came from.
    credit: dict[tuple[str, str], tuple[Level, datetime | None]]
    # (account, category) -> per address (lower case), its emails of that category lately.
    recent: dict[tuple[str, str], dict[str, RecentEmails]]


async def store_and_lock(
    conn: Conn, events: Sequence[tuple[UUID, str, str, Event]], accounts: Sequence[str]
) -> Locked:
    """Store each (event id, source, webhook id, event) whose webhook id is new, and lock
    the subscribers of `accounts` for this transaction."""
    rows = await conn.fetch(
        SQL["store_and_lock"],
        [event_id for event_id, _, _, _ in events],
        [source for _, source, _, _ in events],
        [webhook_id for _, _, webhook_id, _ in events],
        [event.type for _, _, _, event in events],
        [event.account_id for _, _, _, event in events],
        [event.timestamp for _, _, _, event in events],
        [json.dumps(stored_fields(event.data)) for _, _, _, event in events],
        sorted(set(accounts)),
    )
    subscribers = {}
    for row in rows:
        if row["account_id"] is not None:
            fields = dict(row)
            del fields["stored"]
            subscribers[row["account_id"]] = subscriber_of(fields)
    return Locked(frozenset(rows[0]["stored"]), subscribers)


async def facts(
    conn: Conn,
    *,
    addresses: Iterable[str],
    recent: Sequence[tuple[str, str]],
    now: datetime,
    dedupe_keys: Sequence[tuple[str, str]],
    credit: Sequence[tuple[str, str]],
) -> WaveFacts:
    """Which of `addresses` (lower case) are undeliverable, the recent emails of each
    (account, category), which (account, dedupe key) pairs are already notified, and the
    credit state of each (account, currency), locked."""
    rows = await conn.fetch(
        SQL["facts"],
        sorted(set(addresses)),
        [account for account, _ in recent],
        [category for _, category in recent],
        now,
        [account for account, _ in dedupe_keys],
        [key for _, key in dedupe_keys],
        [account for account, _ in credit],
        [currency for _, currency in credit],
    )
    undeliverable: set[str] = set()
    notified: set[tuple[str, str]] = set()
    levels: dict[tuple[str, str], tuple[Level, datetime | None]] = {}
    emails: dict[tuple[str, str], dict[str, RecentEmails]] = {}
    for row in rows:
        fact, account, key = row["fact"], row["account_id"], row["key"]
        if fact == "undeliverable":
            undeliverable.add(key)
        elif fact == "notified":
            notified.add((account, key))
        elif fact == "credit":
            levels[(account, key)] = (Level(row["level"]), row["last_at"])
        else:
            emails.setdefault((account, key), {})[row["recipient"]] = RecentEmails(
                last_hour=int(row["last_hour"]), last_at=row["last_at"], burst_at=row["burst_at"]
            )
    return WaveFacts(frozenset(undeliverable), frozenset(notified), levels, emails)


@dataclass(frozen=True)
class Queued:
    # Per planned row, its notice's id, or None where the account already had its dedupe
    # key (another leg of the same call).
    ids: list[UUID | None]
    # Those this host claimed as it queued them, ready to be sent.
    claimed: list[ClaimedNotice]


@dataclass(frozen=True)
class Decision:
    """Why an event queued nothing, to be stored with it."""

    event_id: UUID
    skip: Skip
    # Only if none of the event's notices is inserted (their dedupe keys were all taken).
    unless_queued: bool = False


async def queue(
    conn: Conn,
    planned: Sequence[tuple[UUID, str, NoticePlan, str]],
    due_now: Sequence[bool],
    levels: Sequence[tuple[str, str, Level, Decimal, datetime]],
    claim: Sequence[bool] = (),
    terms: ClaimTerms | None = None,
    decisions: Sequence[Decision] = (),
    statements: Sequence[StatementEntry] = (),
) -> Queued:
    """Insert each (event id, account, plan, message domain), save each (account,
    currency, level, balance, as of) and store each decision with its event. A new notice
    `due_now` is claimed under `terms` where `claim` says so (unless its address turned
    undeliverable since the facts were read), else the delivery workers are woken for it at
    commit. A plan of a restricted account is stored 'restricted'. Each of `statements` is
    added to its period's credit statement row."""
    ids, columns = notice_columns(planned)
    takes = list(claim) if terms is not None else [False] * len(ids)
    claimed = [notice_id for notice_id, take in zip(ids, takes, strict=True) if take]
    plans = [plan for _, _, plan, _ in planned]
    # Claimed notices that claim_due would withhold were their address undeliverable now.
    checked = [
        notice_id
        for notice_id, take, plan in zip(ids, takes, plans, strict=True)
        if take and plan.category not in MANDATORY_CATEGORIES
    ]
    # Only the notices left to the workers need to wake them.
    waking = [n for n, now, take in zip(ids, due_now, takes, strict=True) if now and not take]
    rows = await conn.fetch(
        SQL["queue"],
        ids,
        *columns,
        waking,
        [account for account, _, _, _, _ in levels],
        [currency for _, currency, _, _, _ in levels],
        [level.value for _, _, level, _, _ in levels],
        [balance for _, _, _, balance, _ in levels],
        [as_of for _, _, _, _, as_of in levels],
        claimed,
        terms.owner if terms else None,
        terms.token if terms else None,
        terms.lease_seconds if terms else 0.0,
        CHANNEL,
        [d.event_id for d in decisions],
        [json.dumps({"code": d.skip.code, "reason": d.skip.reason}) for d in decisions],
        [d.unless_queued for d in decisions],
        [notice_id for notice_id, plan in zip(ids, plans, strict=True) if plan.restricted],
        checked,
        *_statement_columns(statements),
    )
    inserted = {row["id"] for row in rows}
    return Queued(
        [notice_id if notice_id in inserted else None for notice_id in ids],
        [claimed_notice(row) for row in rows if row["claimed"]],
    )


def _statement_columns(entries: Sequence[StatementEntry]) -> list[list[object]]:
    return [
        [e.account_id for e in entries],
        [e.period for e in entries],
        [e.currency for e in entries],
        [e.balance for e in entries],
        [e.at for e in entries],
        [e.opening for e in entries],
        [e.top_up for e in entries],
        [e.payment for e in entries],
        [e.low for e in entries],
        [e.critical for e in entries],
        [e.limit for e in entries],
    ]
