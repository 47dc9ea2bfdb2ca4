"""Low-credit state per account and currency (tables `credit_states`, `balance_history`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("credit")
# The recent spending rate is measured over this window; balances older than twice it are
# of no more use (the daily retention purge deletes them).
SPENDING_WINDOW = timedelta(days=7)
HISTORY_KEPT = 2 * SPENDING_WINDOW


async def recent(
    conn: Conn, account_id: str, currency: str, since: datetime
) -> list[tuple[datetime, Decimal]]:
    rows = await conn.fetch(SQL["recent_balances"], account_id, currency, since)
    return [(row["at"], row["balance"]) for row in rows]
