"""Retention on a real database with a fake clock: every data class is kept before its time
and gone (or cleared) after it, billing notices outlive the others, a closed account goes
after its period and an open one does not; the purge works in short batches that neither
wait for nor block other transactions, runs once across hosts, and catches up after
downtime."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from notifyd import jobs
from notifyd.jobs import Jobs, purge_expired
from notifyd.metrics import Metrics
from notifyd.settings import Settings
from notifyd.storage import db as storage_db
from notifyd.storage import retention
from tests.conftest import WAIT, base_config, eventually, load_config
from tests.integration.retention_support import (
    DAY,
    NOW,
    ago,
    digest,
    event,
    kept,
    subscriber,
    tell,
    years_of_calls,
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_config(tmp_path, base_config(tmp_path, database_url, None))


@pytest.fixture
async def other_host(database_url: str, settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A second host's pool on the same database."""
    pool = await storage_db.create_pool(database_url, settings.database)
    yield pool
    await pool.close()


async def purge(pool: asyncpg.Pool, settings: Settings, **options: Any) -> retention.Outcome:
    async with asyncio.timeout(WAIT * 4):
        outcome = await purge_expired(pool, settings, NOW, force=True, **options)
    assert outcome is not None
    return outcome


async def test_notices_and_events_go_after_a_year_billing_ones_after_seven(
    db: asyncpg.Connection, daemon_pool: asyncpg.Pool, settings: Settings
) -> None:
    await subscriber(db, "acc-1")
    call = {"call_id": "c1", "caller_number": "+40722000001"}
    young_call = await event(db, "acc-1", "call.missed", 364, data=call, category="calls")
    old_call = await event(db, "acc-1", "call.missed", 366, data=call, category="calls")
    old_failed = await event(db, "acc-1", "fax.sent", 400, category="fax", state="failed")
    # Waiting (a notice never sent, however old): not the purge's to remove.
    waiting = await event(db, "acc-1", "call.missed", 400, category="calls", state="queued")
    old_nothing_queued = await event(db, "acc-1", "account.updated", 366)
    paid = {"payment_id": "p1", "amount": "10.00", "currency": "EUR"}
    old_payment = await event(
        db, "acc-1", "billing.payment_confirmed", 366, data=paid, category="billing"
    )
    ancient_payment = await event(
        db, "acc-1", "billing.payment_confirmed", 2556, data=paid, category="billing"
    )
    ancient_unnotified_payment = await event(db, "acc-1", "billing.credit_added", 2556)
    recent_unnotified_payment = await event(db, "acc-1", "billing.credit_added", 2554)

    outcome = await purge(daemon_pool, settings)

    young = [young_call, waiting, old_payment, recent_unnotified_payment]
    old = [old_call, old_failed, old_nothing_queued, ancient_payment, ancient_unnotified_payment]
    assert await kept(db, young) == [True] * 4
    assert await kept(db, old) == [False] * 5
    notices = {row["event_id"] for row in await db.fetch("SELECT event_id FROM notices")}
    assert notices == {young_call, waiting, old_payment}
    assert outcome.counts["notices"] == 2
    assert outcome.counts["billing_notices"] == 1
    assert outcome.counts["events"] == 3
    assert outcome.counts["billing_events"] == 2


async def test_free_text_and_files_are_cleared_after_the_payload_days(
    db: asyncpg.Connection, daemon_pool: asyncpg.Pool, settings: Settings
) -> None:
    await subscriber(db, "acc-1")
    failed = {"remote_number": "+40215550001", "pages": 2, "reason": "Line busy at Ion's office"}
    young = await event(db, "acc-1", "fax.failed", 29, data=failed, category="fax")
    old = await event(db, "acc-1", "fax.failed", 31, data=failed, category="fax")
    # Received long ago but its notice still waits (retrying): its text is still needed.
    waiting = await event(
        db, "acc-1", "fax.failed", 40, data=failed, category="fax", state="queued"
    )
    everything = {field: "free text" for field in ("changed_by", "method", "transcript")}
    allowlist = await event(
        db, "acc-1", "account.ip_allowlist_changed", 31, data={**everything, "user_agent": "x"}
    )
    await db.execute(
        "INSERT INTO attachments (id, event_id, role, filename, declared_type, content, state,"
        " purge_after) VALUES (gen_random_uuid(), $1, 'document', 'due.pdf', 'application/pdf',"
        " 'due', 'ready', $2), (gen_random_uuid(), $1, 'document', 'later.pdf',"
        " 'application/pdf', 'later', 'ready', $3)",
        young,
        NOW - timedelta(seconds=1),
        NOW + timedelta(seconds=1),
    )

    outcome = await purge(daemon_pool, settings)

    data = {row["id"]: row["data"] for row in await db.fetch("SELECT id, data FROM events")}
    assert data[young]["reason"] == failed["reason"]
    assert data[waiting]["reason"] == failed["reason"]
    assert "reason" not in data[old]
    assert data[old]["remote_number"] == failed["remote_number"]  # the rest stays
    assert data[allowlist] == {"account_id": "acc-1"}
    rows = await db.fetch("SELECT filename, content FROM attachments")
    files = {row["filename"]: row["content"] for row in rows}
    assert files == {"due.pdf": None, "later.pdf": b"later"}
    assert outcome.counts["payload_free_text"] == 2
    assert outcome.counts["attachment_bytes"] == 1


async def test_webhook_ids_bounces_balances_and_the_audit_go_after_theirs(
    db: asyncpg.Connection, daemon_pool: asyncpg.Pool, settings: Settings
) -> None:
    for webhook_id, days in (("young", 6.9), ("old", 7.1)):
        await db.execute(
            "INSERT INTO webhook_receipts (source, webhook_id, event_id, received_at)"
            " VALUES ('pbx', $1, gen_random_uuid(), $2)",
            webhook_id,
            ago(days),
        )
    for address, days in (("young@example.test", 364), ("old@example.test", 366)):
        await db.execute(
            "INSERT INTO address_health (address, hard_bounces, last_bounce_at,"
            " undeliverable_at) VALUES ($1, 3, $2, $2)",
            address,
            ago(days),
        )
    for days in (13, 15):
        await db.execute(
            "INSERT INTO balance_history (account_id, currency, balance, at)"
            " VALUES ('acc-1', 'EUR', $1, $2)",
            days,
            ago(days),
        )
    for days in (99, 101):  # a statement month's record: 100 days from the period's start
        await db.execute(
            "INSERT INTO credit_statements (account_id, period, currency)"
            " VALUES ('acc-1', $1, 'EUR')",
            ago(days).date(),
        )

    for action, days in (("young", 729), ("old", 731)):  # [audit] keep_days: 730
        await db.execute(
            "INSERT INTO audit (at, actor, action, account_id) VALUES ($1, 'ops', $2, 'acc-1')",
            ago(days),
            action,
        )

    await purge(daemon_pool, settings)

    assert await db.fetchval("SELECT array_agg(action) FROM audit") == ["young"]
    assert await db.fetchval("SELECT array_agg(webhook_id) FROM webhook_receipts") == ["young"]
    assert await db.fetchval("SELECT array_agg(address) FROM address_health") == [
        "young@example.test"
    ]
    assert await db.fetchval("SELECT array_agg(balance::int) FROM balance_history") == [13]
    assert await db.fetchval("SELECT array_agg(period) FROM credit_statements") == [ago(99).date()]


async def test_a_closed_account_goes_after_its_period_but_its_billing_notices(
    db: asyncpg.Connection, daemon_pool: asyncpg.Pool, settings: Settings
) -> None:
    accounts = {"closed-long-ago": 1096, "closed-lately": 1094, "open": None}
    for account, closed in accounts.items():
        await subscriber(db, account, closed_days_ago=closed)
        await event(db, account, "call.missed", 100, category="calls")
        await event(db, account, "account.closed", 1096)
        await event(db, account, "billing.payment_confirmed", 1200, category="billing")
    await db.execute(
        "INSERT INTO suppressions (address, list, reason) VALUES ($1, 'marketing', 'unsubscribed')",
        "closed-long-ago@example.test",
    )

    outcome = await purge(daemon_pool, settings)

    def holding(rows: list[asyncpg.Record]) -> set[str]:
        return {row[0] for row in rows}

    survivors = {"closed-lately", "open"}
    for query in (
        "SELECT account_id FROM subscribers",
        "SELECT account_id FROM consent_events",
        "SELECT account_id FROM credit_states",
        "SELECT account_id FROM balance_history",
    ):
        assert holding(await db.fetch(query)) == survivors, query
    assert holding(await db.fetch("SELECT account_id FROM notices WHERE category = 'calls'")) == (
        survivors
    )
    assert holding(await db.fetch("SELECT account_id FROM events WHERE type = 'call.missed'")) == (
        survivors
    )
    billing = await db.fetch("SELECT account_id FROM notices WHERE category = 'billing'")
    assert holding(billing) == set(accounts)  # accounting keeps them 7 years
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 1
    assert outcome.counts["closed_accounts"] == 1
    assert outcome.counts["closed_account_notices"] == 1


async def test_years_of_rows_go_in_short_batches_around_rows_others_hold(
    tmp_path: Path,
    database_url: str,
    db: asyncpg.Connection,
    daemon_pool: asyncpg.Pool,
) -> None:
    settings = load_config(
        tmp_path, base_config(tmp_path, database_url, None, retention={"batch_size": 500})
    )
    hours = 4 * 365 * 24  # four years, a missed call an hour
    await years_of_calls(db, hours)
    older = await db.fetchval("SELECT count(*) FROM notices WHERE created_at < $1", ago(365))
    held_id = await db.fetchval("SELECT id FROM notices ORDER BY created_at LIMIT 1")
    # Not the held row: the writer would wait for the holder, not for the purge (50 rows of
    # 26,280: one run in 500 failed so, its lock_timeout firing after a purge of 1 s).
    others = await db.fetch(
        "SELECT id FROM notices WHERE created_at < $1 AND id <> $2 ORDER BY random() LIMIT 50",
        ago(365),
        held_id,
    )
    holder = await asyncpg.connect(database_url)
    writer = await asyncpg.connect(database_url)
    waits: list[float] = []
    done = asyncio.Event()

    async def write_meanwhile() -> None:
        """Another host updating old rows while the purge runs: it may wait for a batch,
        never for the whole purge (lock_timeout fails the test)."""
        await writer.execute("SET lock_timeout = '3s'")
        while not done.is_set():
            for row in others:
                started = time.monotonic()
                await writer.execute("UPDATE notices SET attempts = 2 WHERE id = $1", row["id"])
                waits.append(time.monotonic() - started)
            await asyncio.sleep(0)

    try:
        holding = holder.transaction()
        await holding.start()
        await holder.execute("SELECT 1 FROM notices WHERE id = $1 FOR UPDATE", held_id)
        meanwhile = asyncio.create_task(write_meanwhile())
        try:
            outcome = await purge(daemon_pool, settings)
        finally:
            done.set()
            await meanwhile
        # All but the one held elsewhere, and any the writer was updating at the moment the
        # last batch looked (skipped, as every row someone holds: rare, but not a fault).
        left = {
            row["id"]
            for row in await db.fetch("SELECT id FROM notices WHERE created_at < $1", ago(365))
        }
        assert held_id in left
        assert left - {held_id} <= {row["id"] for row in others}
        assert outcome.counts["notices"] == older - len(left)
        assert outcome.batches >= older // 500
        await holding.rollback()
        # The rows held during the run go at the next one.
        again = await purge(daemon_pool, settings)
        assert again.counts["notices"] == len(left)
    finally:
        await holder.close()
        await writer.close()
    assert await db.fetchval("SELECT count(*) FROM notices WHERE created_at < $1", ago(365)) == 0
    newer = await db.fetchval("SELECT count(*) FROM notices")
    assert newer == hours - older
    assert waits
    assert max(waits) < 3


@pytest.mark.parametrize(
    ("step", "closed_days_ago", "days_ago"),
    [("notices", None, 400), ("closed_account_notices", 1100, 100)],
)
async def test_a_digest_whose_told_notice_someone_holds_waits_and_holds_up_nothing(
    tmp_path: Path,
    database_url: str,
    db: asyncpg.Connection,
    daemon_pool: asyncpg.Pool,
    step: str,
    closed_days_ago: float | None,
    days_ago: float,
) -> None:
    """Deleting a digest sets the digest_id of the notices it told to NULL. When another
    transaction holds one of those (an erasure stripping it, an operator's UPDATE), a batch
    must not wait for it while holding the rest of its rows: the digest stays for the next
    run, and everything else goes now (batches of 10, each taking the digest again)."""
    settings = load_config(
        tmp_path, base_config(tmp_path, database_url, None, retention={"batch_size": 10})
    )
    await subscriber(db, "acc-1", closed_days_ago=closed_days_ago)
    # Made first and older than the calls: the first row every batch finds.
    digest_id = await digest(db, "acc-1", "calls", days_ago + 1)
    calls = [await event(db, "acc-1", "call.missed", days_ago, category="calls") for _ in range(20)]
    await tell(db, digest_id, calls[:2])
    held_id = await db.fetchval("SELECT id FROM notices WHERE event_id = $1", calls[0])
    holder = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("UPDATE notices SET attempts = 1 WHERE id = $1", held_id)
            outcome = await purge(daemon_pool, settings)
            assert outcome.counts[step] == len(calls) - 1  # all but the digest and the held
            left = await db.fetch("SELECT id FROM notices")
            assert {row["id"] for row in left} == {digest_id, held_id}
        again = await purge(daemon_pool, settings)
    finally:
        await holder.close()
    assert again.counts[step] == 2
    assert await db.fetchval("SELECT count(*) FROM notices") == 0
    # A closed account goes once nothing of it is left for a later run (its notices are
    # found through it), an open one stays.
    assert await db.fetchval("SELECT count(*) FROM subscribers") == (closed_days_ago is None)


async def test_one_host_runs_it_once_a_day(
    db: asyncpg.Connection,
    daemon_pool: asyncpg.Pool,
    other_host: asyncpg.Pool,
    settings: Settings,
) -> None:
    await subscriber(db, "acc-1")
    await event(db, "acc-1", "call.missed", 400, category="calls")
    hour = settings.retention.daily_at_hour
    day_two = NOW.replace(hour=hour) + DAY  # the next scheduled time

    async with asyncio.timeout(WAIT * 2):
        both = await asyncio.gather(
            purge_expired(daemon_pool, settings, NOW),
            purge_expired(other_host, settings, NOW),
        )
        later_that_day = await purge_expired(other_host, settings, day_two - timedelta(minutes=1))
        next_day = await purge_expired(other_host, settings, day_two)
    ran = [outcome for outcome in both if outcome is not None]
    assert len(ran) == 1
    assert ran[0].counts["notices"] == 1
    assert later_that_day is None
    assert next_day is not None
    assert await db.fetchval("SELECT ran_at FROM job_runs WHERE job = 'retention'") == day_two


async def test_a_run_missed_while_down_is_made_at_start(
    db: asyncpg.Connection,
    daemon_pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await subscriber(db, "acc-1")
    await event(db, "acc-1", "call.missed", 400, category="calls")
    # The last run was two days ago: yesterday's, at daily_at_hour, was missed.
    await db.execute("INSERT INTO job_runs (job, ran_at) VALUES ('retention', $1)", NOW - 2 * DAY)
    monkeypatch.setattr(jobs, "RETENTION_FIRST_CHECK", timedelta(0))
    metrics = Metrics()
    runner = Jobs(daemon_pool, lambda: settings, clock=lambda: NOW, metrics=metrics)
    runner.start()
    try:

        async def ran() -> bool:
            ran_at = await db.fetchval("SELECT ran_at FROM job_runs")
            return bool(ran_at == NOW)

        await eventually(ran, "the retention run at start")
    finally:
        runner.stop()
    assert await db.fetchval("SELECT count(*) FROM notices") == 0
    assert (
        metrics.registry.get_sample_value("notifyd_retention_purged_total", {"class": "notices"})
        == 1
    )
    assert (
        metrics.registry.get_sample_value("notifyd_retention_last_run_timestamp_seconds")
        == NOW.timestamp()
    )


async def test_not_due_until_the_hour_after_a_run() -> None:
    hour = 3
    day = NOW.replace(hour=hour)
    assert retention.last_due(day + timedelta(hours=1), hour) == day
    assert retention.last_due(day - timedelta(minutes=1), hour) == day - DAY
    assert retention.last_due(day, hour) == day
