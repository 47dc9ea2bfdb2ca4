"""Received events and remembered webhook ids (tables `events`, `webhook_receipts`)."""

from __future__ import annotations

from uuid import UUID

from notifyd.events import Event, stored_fields
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("events")


async def remember_webhook(conn: Conn, source: str, webhook_id: str, event_id: UUID) -> UUID | None:
    """Record the webhook id; return the earlier event's id if it was already stored."""
    inserted = await conn.fetchval(SQL["insert_receipt"], source, webhook_id, event_id)
    if inserted is not None:
        return None
    # Inserted by a transaction that committed before ours looked: it is the original.
    earlier: UUID = await conn.fetchval(SQL["find_receipt"], source, webhook_id)
    return earlier


async def insert_event(
    conn: Conn, event_id: UUID, source: str, webhook_id: str, event: Event
) -> None:
    await conn.execute(
        SQL["insert_event"],
        event_id,
        source,
        webhook_id,
        event.type,
        event.account_id,
        event.timestamp,
        stored_fields(event.data),
    )


async def purge_receipts(conn: Conn, older_than_days: int) -> int:
    status: str = await conn.execute(SQL["purge_receipts"], older_than_days)
    return int(status.split()[-1])
