"""Intake and hard-bounced addresses: a notice is not queued for an address that bounced
(its own, an extra one, one the account moved to), and a change of address is told at both."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import asyncpg

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake.facts import IntakeRules
from notifyd.intake.ingest import Receipt, ingest
from notifyd.settings import CallSettings, DatabaseSettings, DefaultsSettings
from notifyd.storage import db as storage_db

RULES = IntakeRules(DefaultsSettings(quiet_hours=None), CallSettings(), {}, "voip.example")


async def post(pool: asyncpg.Pool, webhook_id: str, event: dict[str, Any]) -> Receipt:
    return await ingest(
        pool,
        source="billing",
        webhook_id=webhook_id,
        event=parse_event(json.dumps(event).encode()),
        rules=RULES,
        now=datetime.now(UTC),
    )


async def recipients(db: asyncpg.Connection, receipt: Receipt) -> list[str]:
    rows = await db.fetch(
        "SELECT recipient FROM notices WHERE event_id = $1 ORDER BY recipient", receipt.event_id
    )
    return [row["recipient"] for row in rows]


async def test_routing_sees_the_undeliverable_addresses_old_and_new(
    database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO address_health (address, hard_bounces, undeliverable_at) VALUES"
        " ('gone@client.example', 3, now()), ('office@client.example', 3, now())"
    )
    pool = await storage_db.create_pool(database_url, DatabaseSettings())
    try:
        await post(pool, "w1", sample_event("account.created", "acc-1", email="a@client.example"))
        await db.execute(
            "UPDATE subscribers SET preferences = $1 WHERE account_id = 'acc-1'",
            {"extra_emails": ["Office@client.example", "desk@client.example"]},
        )
        # As locked: its extra address bounced, the other one and its own are fine.
        fax = await post(pool, "w2", sample_event("fax.sent", "acc-1"))
        # Read before the move below, which readdresses what still waits for the old address.
        fax_before = await recipients(db, fax)
        # The account moves to an address that bounced before: then its fax is not sent.
        moved = await post(
            pool, "w3", sample_event("account.updated", "acc-1", email="Gone@client.example")
        )
        fax_after = await post(pool, "w4", sample_event("fax.sent", "acc-1"))
    finally:
        await pool.close()
    assert fax_before == ["a@client.example", "desk@client.example"]
    # A change of address is told at both, the new one even though it bounced before: the
    # subscriber must hear of it, and a failure there shows in the dead letters.
    assert await recipients(db, moved) == ["Gone@client.example", "a@client.example"]
    assert await recipients(db, fax_after) == ["desk@client.example"]
