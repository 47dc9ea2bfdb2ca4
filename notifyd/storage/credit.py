"""Low-credit state per account and currency (tables `credit_states`, `balance_history`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("credit")


async def recent(
    conn: Conn, account_id: str, currency: str, since: datetime
) -> list[tuple[datetime, Decimal]]:
    rows = await conn.fetch(SQL["recent_balances"], account_id, currency, since)
    return [(row["at"], row["balance"]) for row in rows]


async def purge_history(conn: Conn, before: datetime) -> int:
    status: str = await conn.execute(SQL["purge_history"], before)
    return int(status.split()[-1])
