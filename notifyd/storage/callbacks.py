"""Delivery callbacks (table `callbacks`): claim the rows due with a lease, record each
post's outcome. The rows are written by notices.py with the outcome of their notice
(`mark_sent_many`, `mark_failed` with `told`); delivery/callbacks.py posts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("callbacks")


@dataclass(frozen=True)
class Callback:
    """A claimed callback: what its payload says, and how its posts went so far."""

    id: UUID
    notice_id: UUID
    event_id: UUID
    source: str
    source_webhook_id: str
    event_type: str
    type: str
    category: str
    notice_state: str
    smtp_code: int | None
    occurred_at: datetime
    attempts: int
    last_error: str | None


_COLUMNS = tuple(f.name for f in fields(Callback))


async def claim_due(conn: Conn, limit: int, token: UUID, lease_seconds: float) -> list[Callback]:
    rows = await conn.fetch(SQL["claim_due"], limit, token, lease_seconds)
    return [Callback(**{name: row[name] for name in _COLUMNS}) for row in rows]


async def next_due(conn: Conn) -> datetime | None:
    due: datetime | None = await conn.fetchval(SQL["next_due"])
    return due


async def mark_delivered(conn: Conn, callback_id: UUID, token: UUID, answer: str) -> bool:
    status: str = await conn.execute(SQL["mark_delivered"], callback_id, token, answer)
    return status.endswith(" 1")


async def mark_retry(
    conn: Conn, callback_id: UUID, token: UUID, due_at: datetime, error: str
) -> bool:
    status: str = await conn.execute(SQL["mark_retry"], callback_id, token, due_at, error)
    return status.endswith(" 1")


async def mark_abandoned(conn: Conn, callback_id: UUID, token: UUID, why: str) -> bool:
    status: str = await conn.execute(SQL["mark_abandoned"], callback_id, token, why)
    return status.endswith(" 1")


async def confirm_failures(conn: Conn, notice_ids: Sequence[UUID]) -> int:
    """The failures' callbacks held while the circuit breaker might withdraw them are due
    now (a delivery showed the relay works); how many."""
    status: str = await conn.execute(SQL["confirm_failures"], list(notice_ids))
    return int(status.split()[-1])


async def release_claims(conn: Conn, token: UUID) -> int:
    status: str = await conn.execute(SQL["release_claims"], token)
    return int(status.split()[-1])
