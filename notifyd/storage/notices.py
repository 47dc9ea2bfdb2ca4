"""The notice queue (table `notices`): insert, claim with a lease, record outcomes."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg

from notifyd.model import DigestItem, NoticePlan
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("notices")
CHANNEL = "notifyd_notices"

# What the CHECK constraint notices_state_check allows (migrations 0005, 0006, 0011), and nothing
# else: the admin API's answers and document take the states from here, and a test compares
# them with the constraint of a migrated database.
NoticeState = Literal[
    "queued",
    "sending",
    "sent",
    "failed",
    "merged",
    "cancelled",
    "held",
    "digested",
    "restricted",
]


@dataclass(frozen=True)
class ClaimedNotice:
    """A notice claimed for sending, as the database hands it over: the columns of
    `claimed_notice_columns` in sql/parts.sql, which claim_due and the wave's `queue` both
    select, field for field and in their order (tests/integration/test_schema.py)."""

    id: UUID
    event_id: UUID | None  # None for a digest
    account_id: str
    kind: str
    category: str
    recipient: str
    language: str
    timezone: str
    attempts: int
    created_at: datetime
    # Lifetimes count from here: creation, or an admin's retry.
    lifetime_from: datetime
    message_id: str
    context: dict[str, Any]
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]
    subscriber_name: str | None
    subscriber_username: str | None
    voicemail_audio: bool | None = None


CLAIMED_COLUMNS = tuple(f.name for f in fields(ClaimedNotice))


async def insert_for_accounts(
    conn: Conn,
    event_id: UUID | None,
    planned: Sequence[tuple[str, NoticePlan]],
    message_domain: str,
) -> list[UUID]:
    """Queue notices of one event for several accounts (a broadcast batch) in one statement;
    the ids of those inserted (not those whose dedupe key the account already had). No
    event: a notice nothing was posted for (a fresh link the subscriber asked for)."""
    if not planned:
        return []
    ids, columns = notice_columns(
        [(event_id, account_id, plan, message_domain) for account_id, plan in planned]
    )
    rows = await conn.fetch(SQL["insert_notices"], ids, *columns)
    return [row["id"] for row in rows]


def notice_columns(
    planned: Sequence[tuple[UUID | None, str, NoticePlan, str]],
) -> tuple[list[UUID], list[list[Any]]]:
    """New notice ids for (event id, account, plan, message domain) rows, and the columns
    after the id that `insert_notices` (and waves.sql's `queue`) take as arrays."""
    ids = [uuid4() for _ in planned]
    plans = [plan for _, _, plan, _ in planned]
    return ids, [
        [event_id for event_id, _, _, _ in planned],
        [account_id for _, account_id, _, _ in planned],
        [p.kind for p in plans],
        [p.category.value for p in plans],
        [p.recipient for p in plans],
        [p.language for p in plans],
        [p.timezone for p in plans],
        # jsonb[] would flatten the nested lists: reasons travel as JSON text.
        [_json_text(p.reasons) for p in plans],
        [p.due_at for p in plans],
        # Stored, not derived at send time: it stays the same across retries and restarts
        # even if the sender domain in the config changes.
        [
            f"<{notice_id}@{domain}>"
            for notice_id, (_, _, _, domain) in zip(ids, planned, strict=True)
        ],
        [_json_text(p.context) for p in plans],
        [p.dedupe_key for p in plans],
        [p.digest for p in plans],
    ]


def plan_columns(plans: Sequence[NoticePlan | None]) -> list[list[Any]]:
    """Kind, category, language, zone, reasons, due time, context, dedupe key and digest of
    each plan (all None for no plan), as the arrays a fan-out's shared plans travel in
    (broadcasts.sql `fan_out_batch`); each account's own address and ids are added there."""
    return [
        [p and p.kind for p in plans],
        [p and p.category.value for p in plans],
        [p and p.language for p in plans],
        [p and p.timezone for p in plans],
        [p and _json_text(p.reasons) for p in plans],
        [p and p.due_at for p in plans],
        [p and _json_text(p.context) for p in plans],
        [p and p.dedupe_key for p in plans],
        [p and p.digest for p in plans],
    ]


@functools.lru_cache(maxsize=256)
def _shared_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _json_text(value: Sequence[str] | Mapping[str, Any]) -> str:
    """JSON of reasons or context; a broadcast's plans share theirs, encoded once."""
    if isinstance(value, tuple):
        return _shared_json(value)
    if not value:
        return "{}"
    return json.dumps(
        dict(value) if isinstance(value, Mapping) else list(value), ensure_ascii=False, default=str
    )


async def queued_missed_call(
    conn: Conn, account_id: str, call_id: str
) -> tuple[list[UUID], dict[str, Any]] | None:
    """The unsent missed-call notices of a call (one per address) and the call's data."""
    rows = await conn.fetch(SQL["queued_missed_call"], account_id, call_id)
    return None if not rows else ([row["id"] for row in rows], rows[0]["data"])


async def mark_merged(conn: Conn, notice_ids: Sequence[UUID], note: str) -> None:
    await conn.execute(SQL["mark_merged"], list(notice_ids), note)


async def wake_workers(conn: Conn) -> None:
    """Delivered at commit; only a hint, the workers also poll."""
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


@dataclass(frozen=True)
class ClaimTerms:
    """A worker's claim on notices as a commit queues them (waves.sql `queue`): this
    host's `owner` and `token`, the lease, and at most `slots` notices, none for a domain
    in `skip_domains` (paced too far ahead)."""

    owner: str
    token: UUID
    lease_seconds: float
    slots: int
    skip_domains: frozenset[str] = frozenset()

    def takes(self, recipient: str) -> bool:
        return recipient.rpartition("@")[2].lower() not in self.skip_domains


def claimed_notice(row: asyncpg.Record) -> ClaimedNotice:
    """A row with the columns of `claimed_notice_columns` (and any others, ignored)."""
    return ClaimedNotice(**{name: row[name] for name in CLAIMED_COLUMNS})


@dataclass(frozen=True)
class Claim:
    notices: list[ClaimedNotice]
    # When the earliest notice left unclaimed is due (a lease's end for one being sent);
    # None when there is none.
    later: datetime | None


@dataclass(frozen=True)
class StreamTerms:
    """Which mail streams a claim leaves queued (`paused`: their relay's breaker is open),
    and the kinds besides offers that are marketing mail (settings.stream_of)."""

    paused: frozenset[str] = frozenset()
    marketing_kinds: tuple[str, ...] = ()


async def claim_due(
    conn: Conn,
    limit: int,
    owner: str,
    token: UUID,
    lease_seconds: float,
    skip_domains: Sequence[str] = (),
    off_by_default: Collection[str] = (),
    streams: StreamTerms = StreamTerms(),
) -> Claim:
    """Claim up to `limit` due notices, but those to `skip_domains` and of the streams
    `streams` pauses; those their subscriber or address no longer allows are withheld
    instead, a category of `off_by_default` too where the subscriber chose no mode of it."""
    rows = await conn.fetch(
        SQL["claim_due"],
        limit,
        owner,
        token,
        lease_seconds,
        list(skip_domains),
        sorted(off_by_default),
        list(streams.marketing_kinds),
        sorted(streams.paused),
    )
    return Claim([claimed_notice(row) for row in rows if row["id"] is not None], rows[0]["later"])


async def mark_sent_many(
    conn: Conn, sent: Sequence[tuple[UUID, str]], token: UUID, told: Sequence[str] = ()
) -> set[UUID]:
    """Mark these notices (id, reply) sent where this host holds their claim; returns the
    ones recorded. `told`: the sources with a callback, whose events' notices get their
    `notice.delivered` callback in the same statement (none: the plain statement)."""
    arguments = [[i for i, _ in sent], [reply for _, reply in sent], token]
    if told:
        rows = await conn.fetch(SQL["mark_sent_many_told"], *arguments, list(told))
    else:
        rows = await conn.fetch(SQL["mark_sent_many"], *arguments)
    return {row["id"] for row in rows}


async def mark_retry(
    conn: Conn,
    notice_id: UUID,
    token: UUID,
    due_at: datetime,
    error: str,
    reply: str | None = None,
) -> bool:
    status: str = await conn.execute(SQL["mark_retry"], notice_id, token, due_at, error, reply)
    return status.endswith(" 1")


async def mark_failed(
    conn: Conn,
    notice_id: UUID,
    token: UUID,
    error: str,
    reply: str | None,
    told: tuple[Sequence[str], str] | None = None,
    hold_seconds: float = 0.0,
) -> bool:
    """`told`: (the sources with a callback, the callback's type), for the notice's
    callback to be written in the same statement when its event came from one of them, not
    posted before `hold_seconds`."""
    if told and told[0]:
        sources, kind = told
        failed = await conn.fetchval(
            SQL["mark_failed_told"],
            notice_id,
            token,
            error,
            reply,
            list(sources),
            kind,
            hold_seconds,
        )
        return bool(failed)
    status: str = await conn.execute(SQL["mark_failed"], notice_id, token, error, reply)
    return status.endswith(" 1")


async def release_claims(conn: Conn, token: UUID) -> int:
    status: str = await conn.execute(SQL["release_claims"], token)
    return int(status.split()[-1])


async def renew_leases(conn: Conn, token: UUID, lease_seconds: float) -> int:
    status: str = await conn.execute(SQL["renew_leases"], token, lease_seconds)
    return int(status.split()[-1])


async def scrape_gauges(conn: Conn, now: datetime) -> dict[str, float]:
    """/metrics' queue gauges: queued, sending, failed, oldest_due_seconds (at `now`)."""
    row = await conn.fetchrow(SQL["scrape_gauges"], now)
    assert row is not None  # an aggregate always answers one row
    return {name: float(value) for name, value in row.items()}


async def of_event(conn: Conn, event_id: UUID) -> list[dict[str, Any]]:
    """An event's notices, in the order they were queued."""
    return [dict(row) for row in await conn.fetch(SQL["notices_of_event"], event_id)]


async def of_account(
    conn: Conn,
    account_id: str,
    limit: int,
    before: datetime | None = None,
    before_id: UUID | None = None,
) -> list[dict[str, Any]]:
    """An account's notices, newest first; those created before `before` (and at it, after
    `before_id` in the order) for a next page."""
    rows = await conn.fetch(SQL["notices_of_account"], account_id, limit, before, before_id)
    return [dict(row) for row in rows]


async def retry_failed(conn: Conn, notice_id: UUID) -> str | None:
    """The notice's state after the attempt: 'queued' if it was failed; None if unknown."""
    state: str | None = await conn.fetchval(SQL["retry_failed"], notice_id)
    if state is not None:
        await wake_workers(conn)
    return state


async def flush_digests(
    conn: Conn, now: datetime, groups: int, message_domain: str
) -> tuple[int, int]:
    """Turn up to `groups` due digest periods into digest notices: (digests, notices told)."""
    row = await conn.fetchrow(SQL["flush_digests"], now, groups, message_domain)
    assert row is not None
    return int(row["digests"]), int(row["items"])


async def digest_items(conn: Conn, digest_id: UUID) -> list[DigestItem]:
    rows = await conn.fetch(SQL["digest_items"], digest_id)
    return [
        DigestItem(
            kind=row["kind"],
            occurred_at=row["occurred_at"],
            data=row["data"],
            context=row["context"],
        )
        for row in rows
    ]


async def dead_letters(
    conn: Conn,
    limit: int,
    category: str | None,
    before: datetime | None,
    before_id: UUID | None = None,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(SQL["dead_letters"], limit, category, before, before_id)
    return [dict(row) for row in rows]


async def restore_refused(conn: Conn, notice_ids: Sequence[UUID], due_at: datetime) -> list[str]:
    """Queue again notices failed by a relay that refused everything; their addresses."""
    rows = await conn.fetch(SQL["restore_refused"], list(notice_ids), due_at)
    return [row["recipient"] for row in rows]


async def release_held(conn: Conn, notice_ids: Sequence[UUID]) -> int:
    """Held notices due now; how many."""
    status = await conn.execute(SQL["release_held"], list(notice_ids))
    return int(status.split()[-1])


async def reroute(
    conn: Conn,
    notice_id: UUID,
    addresses: Sequence[str],
    why: str,
    message_domain: str,
    not_of_copies: Sequence[str] = (),
) -> list[str]:
    """Copies of a notice to other addresses of the account that have none yet; their
    reasons are the notice's but those in `not_of_copies` (they spoke of its address), and
    `why`."""
    if not addresses:
        return []
    ids = [uuid4() for _ in addresses]
    rows = await conn.fetch(
        SQL["reroute"], notice_id, list(addresses), ids, why, message_domain, list(not_of_copies)
    )
    return [row["recipient"] for row in rows]


async def reported(conn: Conn, notice_id: UUID) -> asyncpg.Record | None:
    """The notice a bounce or complaint report names: its id, account, category, recipient,
    state and Message-ID; None if there is none (any more)."""
    row: asyncpg.Record | None = await conn.fetchrow(SQL["reported_notice"], notice_id)
    return row


async def mark_bounced(conn: Conn, notice_id: UUID, reply: str) -> bool:
    """A sent notice failed after all (a bounce report); False if it was not 'sent'."""
    status: str = await conn.execute(SQL["mark_bounced"], notice_id, reply)
    return status.endswith(" 1")
