"""The monthly credit statements' running record (table `credit_statements`, SQL
`sql/statements.sql`): the periods not yet told, and marking one told once across hosts.

The rows are added to by the wave that stores each billing event (storage/waves.py); the
job that reads them and queues the statements is jobs.py, what they say rules/statements.py;
retention (retention.py), erasure (erasure.py) and export (export.py) cover the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from notifyd.model import Subscriber
from notifyd.storage import queries
from notifyd.storage.db import Conn
from notifyd.storage.subscribers import subscriber_of

SQL = queries.load("statements")
# A period's row is needed until its statement went out (the month after) and the next
# period opened from it; three months leave room for a long downtime's catch-up.
KEPT = timedelta(days=100)
_SUBSCRIBER = (
    "account_id", "email", "name", "username", "language", "timezone", "closed_at",
    "voicemail_audio", "low_credit_threshold", "preferences", "restricted_at",
)  # fmt: skip


@dataclass(frozen=True)
class Unsent:
    """One account's period not yet told: its rows (one per currency) and subscriber."""

    account_id: str
    period: date
    subscriber: Subscriber
    rows: Sequence[dict[str, Any]]


async def unsent(conn: Conn, through: date) -> list[Unsent]:
    """The periods up to `through` not yet told, one per account and period."""
    found: dict[tuple[str, date], Unsent] = {}
    for row in await conn.fetch(SQL["unsent"], through):
        key = (row["account_id"], row["period"])
        if key not in found:
            subscriber = subscriber_of({name: row[name] for name in _SUBSCRIBER})
            found[key] = Unsent(row["account_id"], row["period"], subscriber, [])
        rows = found[key].rows
        assert isinstance(rows, list)
        rows.append(dict(row))
    return list(found.values())


async def mark_told(conn: Conn, account_id: str, period: date, now: datetime) -> bool:
    """Mark the period told; False when another transaction did (it queued it)."""
    return bool(await conn.fetch(SQL["mark_told"], account_id, period, now))


async def carry_forward(conn: Conn, account_id: str, period: date, following: date) -> None:
    await conn.execute(SQL["carry_forward"], account_id, period, following)
