"""Low-credit state per account and currency (tables `credit_states`, `balance_history`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from notifyd.storage import queries
from notifyd.storage.db import Conn
from notifyd.thresholds import Level

SQL = queries.load("credit")


async def lock_many(
    conn: Conn, states: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[Level, datetime | None]]:
    """Per (account, currency): the stored level and the time of the balance it came from,
    locked for this transaction (created at 'ok' on the first balance)."""
    rows = await conn.fetch(
        SQL["lock_states"], [account for account, _ in states], [cur for _, cur in states]
    )
    return {
        (row["account_id"], row["currency"]): (Level(row["level"]), row["as_of"]) for row in rows
    }


async def save_many(conn: Conn, saved: Sequence[tuple[str, str, Level, Decimal, datetime]]) -> None:
    """Per (account, currency, level, balance, as of): the new state, and the balance into
    the spending history."""
    if not saved:
        return
    await conn.execute(
        SQL["save_states"],
        [account for account, _, _, _, _ in saved],
        [currency for _, currency, _, _, _ in saved],
        [level.value for _, _, level, _, _ in saved],
        [balance for _, _, _, balance, _ in saved],
        [as_of for _, _, _, _, as_of in saved],
    )


async def recent(
    conn: Conn, account_id: str, currency: str, since: datetime
) -> list[tuple[datetime, Decimal]]:
    rows = await conn.fetch(SQL["recent_balances"], account_id, currency, since)
    return [(row["at"], row["balance"]) for row in rows]


async def purge_history(conn: Conn, before: datetime) -> int:
    status: str = await conn.execute(SQL["purge_history"], before)
    return int(status.split()[-1])
