"""Received events and remembered webhook ids (tables `events`, `webhook_receipts`)."""

from __future__ import annotations

from uuid import UUID

from notifyd.events import Event, stored_fields
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("events")


async def store_event(
    conn: Conn, event_id: UUID, source: str, webhook_id: str, event: Event
) -> UUID | None:
    """Record the webhook id and store the event; if the id was already stored, store
    nothing and return the earlier event's id."""
    stored = await conn.fetchval(
        SQL["store_event"],
        event_id,
        source,
        webhook_id,
        event.type,
        event.account_id,
        event.timestamp,
        stored_fields(event.data),
    )
    if stored:
        return None
    # Inserted by a transaction that committed before ours looked: it is the original.
    earlier: UUID = await conn.fetchval(SQL["find_receipt"], source, webhook_id)
    return earlier


async def purge_receipts(conn: Conn, older_than_days: int) -> int:
    status: str = await conn.execute(SQL["purge_receipts"], older_than_days)
    return int(status.split()[-1])
