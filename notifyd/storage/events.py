"""Received events and remembered webhook ids (tables `events`, `webhook_receipts`)."""

from __future__ import annotations

from uuid import UUID

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("events")


async def find_receipt(conn: Conn, source: str, webhook_id: str) -> UUID:
    """The event stored for a webhook id already known."""
    earlier: UUID = await conn.fetchval(SQL["find_receipt"], source, webhook_id)
    return earlier


async def purge_receipts(conn: Conn, older_than_days: int) -> int:
    status: str = await conn.execute(SQL["purge_receipts"], older_than_days)
    return int(status.split()[-1])
