"""The intake driven without a daemon: rules for a daytime without quiet hours, and a
database emptied between waves."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from notifyd.intake.facts import IntakeRules
from notifyd.settings import CallSettings, DefaultsSettings, Thresholds

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # 12:00 in Bucharest: no quiet hours


RULES = IntakeRules(
    DefaultsSettings(quiet_hours=None),
    CallSettings(voicemail_wait_seconds=120, burst_window_seconds=300),
    {"RON": Thresholds(low=Decimal("5.00"), critical=Decimal("1.00"))},
    "voip.example",
)


async def reset(db: asyncpg.Connection) -> None:
    await db.execute(
        "TRUNCATE notices, events, webhook_receipts, credit_states, balance_history CASCADE"
    )
    await db.execute("DELETE FROM subscribers")
    await db.executemany(
        "INSERT INTO subscribers (account_id, email) VALUES ($1, $2)",
        [(f"acc-{n}", f"user{n}@client.example") for n in (1, 2, 3)],
    )
