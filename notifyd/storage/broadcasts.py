"""Broadcasts and their batched fan-out (table `broadcasts`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("broadcasts")


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


async def fan_out_batch(
    conn: Conn,
    broadcast: Runnable,
    *,
    size: int,
    language: str,
    timezone: str,
    message_domain: str,
) -> Batch:
    marketing = broadcast.kind == "marketing.offer"
    reasons = json.dumps(
        ["category marketing", "offer to subscribers with consent, not unsubscribed"]
        if marketing
        else ["category service (mandatory)", "broadcast to every open account"]
    )
    row = await conn.fetchrow(
        SQL["fan_out_batch"],
        broadcast.id,
        broadcast.cursor,
        size,
        broadcast.event_id,
        broadcast.kind,
        language,
        timezone,
        reasons,
        message_domain,
        marketing,
        "marketing" if marketing else "service",
    )
    assert row is not None
    return Batch(state=row["state"], queued=int(row["queued"]), added=int(row["added"]))


async def get(conn: Conn, broadcast_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SQL["get_broadcast"], broadcast_id)
    if row is None:
        return None
    record = dict(row)
    return {
        "id": str(record["id"]),
        "kind": record["kind"],
        "state": record["state"],
        "starts_at": record["starts_at"].isoformat(),
        "queued": record["queued"],
        "sent": record["sent"],
        "created_by": record["created_by"],
        "created_at": record["created_at"].isoformat(),
        "finished_at": record["finished_at"].isoformat() if record["finished_at"] else None,
        "subject": record["data"].get("subject"),
    }


async def cancel(conn: Conn, broadcast_id: UUID) -> tuple[bool, int]:
    row = await conn.fetchrow(SQL["cancel_broadcast"], broadcast_id)
    assert row is not None
    return bool(row["cancelled"]), int(row["notices"])
