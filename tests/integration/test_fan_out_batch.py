"""A broadcast's batches against the database: accounts routed alike are queued by
PostgreSQL from one plan per group, the rest one by one, with the same outcome for every
kind of account (language, zone, own addresses, consent, suppression, bounces, closed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from notifyd.intake.broadcasts import Broadcaster, fan_out_batch
from notifyd.settings import DefaultsSettings
from notifyd.storage import broadcasts as broadcast_store
from tests.conftest import base_config, load_config

# 11:00 UTC: 14:00 in Bucharest (the default zone), 07:00 in New York, inside the default
# quiet hours (22:00-08:00) there.
NOW = datetime(2026, 6, 10, 11, 0, tzinfo=UTC)
AFTER_NEW_YORK_NIGHT = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)

# account: (email, language, zone, preferences, marketing consent, closed)
ACCOUNTS: dict[str, tuple[str, str | None, str | None, dict[str, Any], bool | None, bool]] = {
    "acc-01": ("one@client.example", "ro", None, {}, True, False),
    "acc-02": ("Suppressed@client.example", "en", None, {}, True, False),
    "acc-03": ("ny@client.example", "ro", "America/New_York", {}, True, False),
    "acc-04": ("closed@client.example", "ro", None, {}, True, True),
    "acc-05": ("five@client.example", None, None, {"extra_emails": ["office@client.example"]},
               True, False),
    "acc-06": ("bounced@client.example", "ro", None, {}, True, False),
    "acc-07": ("noconsent@client.example", "ro", None, {}, None, False),
    "acc-08": ("revoked@client.example", "ro", None, {}, False, False),
    "acc-09": ("nooffers@client.example", "ro", None, {"modes": {"marketing": "off"}}, True,
               False),
    "acc-10": ("ten@client.example", "en", None, {}, True, False),
}  # fmt: skip


async def accounts(db: asyncpg.Connection) -> None:
    for account, (email, language, zone, preferences, consent, closed) in ACCOUNTS.items():
        await db.execute(
            "INSERT INTO subscribers (account_id, email, language, timezone, preferences,"
            " closed_at) VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END)",
            *(account, email, language, zone, preferences, closed),
        )
        if consent is not None:
            for granted in (True, consent):  # acc-08: granted, then taken back
                await db.execute(
                    "INSERT INTO consent_events (account_id, purpose, granted, source,"
                    " wording_version) VALUES ($1, 'marketing', $2, 'subscriber', 'v1')",
                    *(account, granted),
                )
    await db.execute(
        "INSERT INTO suppressions (address, list, reason)"
        " VALUES ('suppressed@client.example', 'marketing', 'unsubscribe link')"
    )
    await db.execute(
        "INSERT INTO address_health (address, hard_bounces, undeliverable_at)"
        " VALUES ('bounced@client.example', 3, now())"
    )


async def one_batch(db: asyncpg.Connection, size: int) -> broadcast_store.Batch:
    async with db.transaction():
        runnable = await broadcast_store.next_runnable(db)
        assert runnable is not None
        return await fan_out_batch(
            db,
            runnable,
            size=size,
            defaults=DefaultsSettings(),
            message_domain="voip.example",
            now=NOW,
        )


async def fan_out(db: asyncpg.Connection, kind: str, size: int) -> tuple[list[int], int]:
    """Run the broadcast's batches to the end: (notices added per batch, queued in all)."""
    async with db.transaction():
        await broadcast_store.create(db, kind, {"subject": "s"}, NOW, None)
    added: list[int] = []
    while True:
        batch = await one_batch(db, size)
        added.append(batch.added)
        if batch.state == "done":
            return added, batch.queued
        assert len(added) < 20


async def notices(db: asyncpg.Connection, kind: str) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT account_id, recipient, language, timezone, due_at, state, message_id, id"
        " FROM notices WHERE kind = $1 ORDER BY account_id, recipient",
        kind,
    )
    for row in rows:
        assert row["message_id"] == f"<{row['id']}@voip.example>"
    return [tuple(row.values())[:6] for row in rows]


@pytest.mark.parametrize("size", [3, 5000])
async def test_a_service_broadcast_reaches_every_open_account(
    db: asyncpg.Connection, size: int
) -> None:
    await accounts(db)
    added, queued = await fan_out(db, "notice.service", size)
    bucharest = "Europe/Bucharest"
    assert await notices(db, "notice.service") == [
        ("acc-01", "one@client.example", "ro", bucharest, NOW, "queued"),
        # Mandatory: the marketing list's suppression does not apply.
        ("acc-02", "Suppressed@client.example", "en", bucharest, NOW, "queued"),
        ("acc-03", "ny@client.example", "ro", "America/New_York", AFTER_NEW_YORK_NIGHT, "queued"),
        ("acc-05", "five@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-05", "office@client.example", "ro", bucharest, NOW, "queued"),
        # Its only address bounced: still queued, so the failure shows in the dead letters.
        ("acc-06", "bounced@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-07", "noconsent@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-08", "revoked@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-09", "nooffers@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-10", "ten@client.example", "en", bucharest, NOW, "queued"),
    ]
    assert queued == sum(added) == 10
    if size == 3:
        assert len(added) == 4  # 9 open accounts in batches of 3, the last one short


async def test_an_offer_reaches_only_consenting_deliverable_unsuppressed_addresses(
    db: asyncpg.Connection,
) -> None:
    await accounts(db)
    added, queued = await fan_out(db, "marketing.offer", 4)
    bucharest = "Europe/Bucharest"
    assert await notices(db, "marketing.offer") == [
        ("acc-01", "one@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-03", "ny@client.example", "ro", "America/New_York", AFTER_NEW_YORK_NIGHT, "queued"),
        ("acc-05", "five@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-05", "office@client.example", "ro", bucharest, NOW, "queued"),
        ("acc-10", "ten@client.example", "en", bucharest, NOW, "queued"),
    ]
    assert queued == sum(added) == 5


async def test_a_replayed_batch_adds_nothing(db: asyncpg.Connection) -> None:
    await accounts(db)
    await fan_out(db, "notice.service", 4)
    # The batches once more from the start, as if the cursor had not been saved.
    await db.execute("UPDATE broadcasts SET cursor = '', state = 'running', queued = 0")
    assert (await one_batch(db, 5000)).added == 0
    assert await db.fetchval("SELECT count(*) FROM notices") == 10


async def test_a_batch_is_found_by_the_primary_key_even_before_the_table_is_analyzed(
    db: asyncpg.Connection,
) -> None:
    """Subscribers imported just before a broadcast, statistics from when the table was
    empty: the batch is still an index range of the primary key, not a read of the whole
    table and a sort (100-150 ms a batch of 5,000 at 300,000, bench/fanout.py)."""
    await db.execute("ALTER TABLE subscribers SET (autovacuum_enabled = false)")
    await db.execute("ANALYZE subscribers")  # empty: no open account among the statistics
    await db.execute(
        "INSERT INTO subscribers (account_id, email)"
        " SELECT 'acc-' || lpad(g::text, 7, '0'), 'u' || g || '@client.example'"
        " FROM generate_series(1, 50000) AS g"
    )
    plans = []
    for mode in ("force_custom_plan", "force_generic_plan"):
        await db.execute(f"SET plan_cache_mode = {mode}")
        statement = await db.prepare(broadcast_store.SQL["fan_out_groups"])
        plans.append(
            "\n".join(
                row[0]
                for row in await db.fetch(
                    f"EXPLAIN EXECUTE {statement.get_name()}('acc-0020000', 500, false)"
                )
            )
        )
    for plan in plans:
        assert "Index Scan using subscribers_pkey on subscribers" in plan, plan
        assert "Sort Key: subscribers.account_id" not in plan, plan
        assert "Seq Scan on subscribers" not in plan, plan


async def test_other_hosts_are_woken_after_the_batch_commits_not_by_its_commit(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    """A NOTIFY takes a lock every notifying commit waits for, and a batch's commit flushes
    megabytes of WAL: webhooks whose notice is due now waited behind it (Lock:object in
    pg_stat_activity, webhook p99 46-81 ms -> 31 ms at a million, bench/fanout.py)."""
    await accounts(db)
    notified: list[tuple[str, bool]] = []

    async def watched(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(
            lambda query: (
                notified.append((query.query, conn.is_in_transaction()))
                if "pg_notify" in query.query
                else None
            )
        )

    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    woken: list[int] = []
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2, init=watched) as pool:
        broadcaster = Broadcaster(
            pool, lambda: settings, lambda: "voip.example", lambda: woken.append(1)
        )
        async with db.transaction():
            await broadcast_store.create(db, "notice.service", {"subject": "s"}, NOW, None)
        assert await broadcaster.run_batch()
    assert await db.fetchval("SELECT count(*) FROM notices") == 10
    assert woken == [1]
    assert notified == [("SELECT pg_notify($1, '')", False)]
