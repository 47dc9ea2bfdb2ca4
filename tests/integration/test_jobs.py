"""Periodic jobs on a real database: webhook ids and attachment bytes expire on schedule
(the retention run, forced; test_retention.py tells every data class and the schedule)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from notifyd.jobs import RETENTION_LOCK, purge_expired, run_exclusive
from notifyd.storage import db as storage_db
from tests.conftest import BILLING_SECRET, PBX_SECRET, base_config, load_config, running_daemon


@pytest.fixture
async def pool(database_url: str, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    pool = await storage_db.create_pool(database_url, settings.database)
    yield pool
    await pool.close()


async def test_webhook_ids_are_forgotten_after_the_idempotency_window(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    event = sample_event("account.created", "acc-1")
    async with running_daemon(settings) as daemon:
        first = await daemon.post("billing", event, BILLING_SECRET, webhook_id="msg-old")
        await db.execute("UPDATE webhook_receipts SET received_at = now() - interval '8 days'")
        await purge_expired(pool, settings, datetime.now(UTC), force=True)
        again = await daemon.post("billing", event, BILLING_SECRET, webhook_id="msg-old")
        recent = await daemon.post("billing", event, BILLING_SECRET, webhook_id="msg-new")
        replay = await daemon.post("billing", event, BILLING_SECRET, webhook_id="msg-new")
    assert first[1]["duplicate"] is False
    assert again[1]["duplicate"] is False  # 8 days later the id is new again
    assert replay[1] == {"event_id": recent[1]["event_id"], "duplicate": True}


async def test_attachment_bytes_are_cleared_after_delivery_and_retention(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    config = base_config(tmp_path, database_url, None, retention={"payload_days": 3})
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        status, _ = await daemon.post("pbx", sample_event("fax.received", "acc-1"), PBX_SECRET)
        assert status == 202
        async with asyncio.timeout(15):
            while await db.fetchval("SELECT purge_after FROM attachments") is None:
                await asyncio.sleep(0.05)
    purge_after = await db.fetchval("SELECT purge_after FROM attachments")
    assert timedelta(days=2.9) < purge_after - datetime.now(UTC) <= timedelta(days=3)

    await purge_expired(pool, settings, datetime.now(UTC), force=True)
    assert await db.fetchval("SELECT content IS NOT NULL FROM attachments")  # not yet

    await db.execute("UPDATE attachments SET purge_after = now() - interval '1 second'")
    await purge_expired(pool, settings, datetime.now(UTC), force=True)
    row = await db.fetchrow("SELECT content, state, filename, size_bytes FROM attachments")
    assert row is not None
    assert row["content"] is None
    assert row["state"] == "purged"
    assert row["filename"].endswith(".pdf")  # the history still names the file
    assert row["size_bytes"] > 0


async def test_a_job_held_by_another_host_is_skipped(database_url: str, pool: asyncpg.Pool) -> None:
    ran: list[str] = []

    async def job(conn: object) -> None:
        ran.append("ran")

    holder = await asyncpg.connect(database_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", RETENTION_LOCK)
        skipped = await run_exclusive(pool, RETENTION_LOCK, job)
        await holder.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)
        done = await run_exclusive(pool, RETENTION_LOCK, job)
    finally:
        await holder.close()
    assert (skipped, done, ran) == (False, True, ["ran"])
