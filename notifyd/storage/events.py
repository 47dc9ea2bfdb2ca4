"""Received events and remembered webhook ids (tables `events`, `webhook_receipts`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from uuid import UUID

from notifyd.events import Event, stored_fields
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("events")


async def store_events(conn: Conn, events: Sequence[tuple[UUID, str, str, Event]]) -> set[UUID]:
    """Record each (event id, source, webhook id, event) and store the event, in one round
    trip; the ids of those stored. A webhook id already known stores nothing."""
    rows = await conn.fetch(
        SQL["store_events"],
        [event_id for event_id, _, _, _ in events],
        [source for _, source, _, _ in events],
        [webhook_id for _, _, webhook_id, _ in events],
        [event.type for _, _, _, event in events],
        [event.account_id for _, _, _, event in events],
        [event.timestamp for _, _, _, event in events],
        [json.dumps(stored_fields(event.data)) for _, _, _, event in events],
    )
    return {row["id"] for row in rows}


async def find_receipt(conn: Conn, source: str, webhook_id: str) -> UUID:
    """The event stored for a webhook id already known."""
    earlier: UUID = await conn.fetchval(SQL["find_receipt"], source, webhook_id)
    return earlier


async def purge_receipts(conn: Conn, older_than_days: int) -> int:
    status: str = await conn.execute(SQL["purge_receipts"], older_than_days)
    return int(status.split()[-1])
