"""Low-credit state per account and currency (tables `credit_states`, `balance_history`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from notifyd.storage import queries
from notifyd.storage.db import Conn
from notifyd.thresholds import Level

SQL = queries.load("credit")


async def lock(conn: Conn, account_id: str, currency: str) -> tuple[Level, datetime | None]:
    """The stored level and the time of the balance it came from, locked for this transaction."""
    await conn.execute(SQL["ensure_state"], account_id, currency)
    row = await conn.fetchrow(SQL["lock_state"], account_id, currency)
    assert row is not None
    return Level(row["level"]), row["as_of"]


async def save(
    conn: Conn, account_id: str, currency: str, level: Level, balance: Decimal, as_of: datetime
) -> None:
    await conn.execute(SQL["save_state"], account_id, currency, level.value, balance, as_of)
    await conn.execute(SQL["record_balance"], account_id, currency, balance, as_of)


async def recent(
    conn: Conn, account_id: str, currency: str, since: datetime
) -> list[tuple[datetime, Decimal]]:
    rows = await conn.fetch(SQL["recent_balances"], account_id, currency, since)
    return [(row["at"], row["balance"]) for row in rows]


async def purge_history(conn: Conn, before: datetime) -> int:
    status: str = await conn.execute(SQL["purge_history"], before)
    return int(status.split()[-1])
