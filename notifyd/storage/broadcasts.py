"""Broadcasts (table `broadcasts`) and the statements of their batched fan-out; which
notices each account gets is decided in `intake.broadcasts`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg

from notifyd.model import NoticePlan
from notifyd.storage import notices as notice_store
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("broadcasts")

# What the CHECK constraints of table broadcasts (migration 0005) allow: the admin API takes
# them from here, and a test compares them with the constraints of a migrated database.
BroadcastKind = Literal["notice.policy_changed", "notice.service", "marketing.offer"]
BroadcastState = Literal["scheduled", "running", "done", "cancelled"]


@dataclass(frozen=True)
class Runnable:
    id: UUID
    kind: str
    event_id: UUID
    cursor: str


@dataclass(frozen=True)
class Batch:
    state: str
    queued: int
    added: int


async def create(
    conn: Conn,
    kind: str,
    content: dict[str, Any],
    starts_at: datetime,
    created_by: str | None,
) -> UUID:
    broadcast_id, event_id = uuid4(), uuid4()
    await conn.execute(SQL["insert_event"], event_id, str(broadcast_id), kind, content)
    await conn.execute(SQL["insert_broadcast"], broadcast_id, kind, event_id, starts_at, created_by)
    return broadcast_id


async def next_runnable(conn: Conn) -> Runnable | None:
    """Locks the broadcast for the caller's transaction (skipped by other hosts)."""
    row = await conn.fetchrow(SQL["next_runnable"])
    return None if row is None else Runnable(**dict(row))


async def fan_out_groups(
    conn: Conn, cursor: str, size: int, marketing: bool
) -> tuple[list[asyncpg.Record], str | None, int]:
    """The next `size` accounts after `cursor`, grouped by language, zone and preferences
    (an offer: only accounts with consent): the groups, the last account and how many
    accounts the batch spanned (fewer than `size`: the last batch)."""
    found = await conn.fetch(SQL["fan_out_groups"], cursor, size, marketing)
    groups = [group for group in found if group["preferences"] is not None]
    return groups, found[0]["last"], found[0]["spanned"]


async def queue_groups(
    conn: Conn,
    broadcast: Runnable,
    last: str | None,
    marketing: bool,
    message_domain: str,
    alike: Sequence[tuple[asyncpg.Record, NoticePlan | None]],
) -> tuple[int, list[asyncpg.Record]]:
    """Queue, in PostgreSQL, one notice per account of each group routed alike (each to the
    account's own address; suppressed and undeliverable addresses checked per row): how
    many were added, and the accounts of the batch that must be routed one by one."""
    rows = await conn.fetch(
        SQL["fan_out_batch"],
        broadcast.cursor,
        last,
        marketing,
        broadcast.event_id,
        message_domain,
        *_group_columns(alike),
    )
    return rows[0]["added"], [row for row in rows if row["account_id"] is not None]


async def suppressed_among(conn: Conn, addresses: Sequence[str]) -> frozenset[str]:
    found = await conn.fetch(SQL["suppressed_among"], list(addresses))
    return frozenset(row["address"] for row in found)


async def advance(
    conn: Conn, broadcast: Runnable, last: str | None, added: int, *, done: bool
) -> Batch:
    """Move the broadcast's cursor past this batch and count what it queued."""
    advanced = await conn.fetchrow(SQL["advance"], broadcast.id, last, added, done)
    assert advanced is not None
    return Batch(state=advanced["state"], queued=int(advanced["queued"]), added=added)


def _group_columns(alike: Sequence[tuple[asyncpg.Record, NoticePlan | None]]) -> list[list[Any]]:
    """The groups routed alike and their plans, as the arrays `fan_out_batch` takes."""
    return [
        [group["language"] for group, _ in alike],
        [group["timezone"] for group, _ in alike],
        [group["preferences"] for group, _ in alike],
        *notice_store.plan_columns([plan for _, plan in alike]),
    ]


async def get(conn: Conn, broadcast_id: UUID) -> dict[str, Any] | None:
    """The broadcast and its progress; its content's subject, not its body."""
    row = await conn.fetchrow(SQL["get_broadcast"], broadcast_id)
    if row is None:
        return None
    record = dict(row)
    return {
        "id": record["id"],
        "kind": record["kind"],
        "state": record["state"],
        "starts_at": record["starts_at"],
        "queued": record["queued"],
        "sent": record["sent"],
        "created_by": record["created_by"],
        "created_at": record["created_at"],
        "finished_at": record["finished_at"],
        "subject": record["data"].get("subject"),
    }


async def cancel(conn: Conn, broadcast_id: UUID) -> tuple[bool, int]:
    row = await conn.fetchrow(SQL["cancel_broadcast"], broadcast_id)
    assert row is not None
    return bool(row["cancelled"]), int(row["notices"])
