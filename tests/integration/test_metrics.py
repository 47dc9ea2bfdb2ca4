"""/metrics answers the on-call questions (issue 21, docs/operations.md): build info,
process metrics, webhook latency, the queue's age and the dead letters read at scrape time,
database reachability without hanging the scrape, and the content type Prometheus expects."""

from __future__ import annotations

import asyncio
import platform
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST

from notifyd import __version__
from notifyd.catalogue.samples import sample_event
from notifyd.http.health import SCRAPE_DATABASE_TIMEOUT
from tests.conftest import (
    BILLING_SECRET,
    SmtpSink,
    base_config,
    eventually,
    load_config,
    running_daemon,
)
from tests.integration.metrics_support import is_nan, samples, scrape, value


async def _queued(db: asyncpg.Connection, account: str, due_at: datetime, state: str) -> None:
    """A notice in `state`, due at `due_at` (failed then, if failed), straight into the table."""
    await db.execute(
        "INSERT INTO notices (id, account_id, kind, category, recipient, language, timezone,"
        " message_id, state, created_at, due_at, failed_at) VALUES ($1, $2, 'account.created',"
        " 'account', $3, 'ro', 'UTC', $4, $5::text, $6::timestamptz, $6,"
        " CASE WHEN $5 = 'failed' THEN $6 END)",
        uuid.uuid4(),
        account,
        f"{account}@client.example",
        f"<{uuid.uuid4().hex}@voip.example>",
        state,
        due_at,
    )


async def test_scrape_tells_build_process_latency_and_queue(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-1", email="one@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        await smtp_sink.wait_for(1)
        content_type, text = await scrape(daemon)
        assert content_type == CONTENT_TYPE_LATEST
        python = platform.python_version()
        build = f'notifyd_build_info{{python="{python}",version="{__version__}"}}'
        assert value(text, build) == 1.0
        assert value(text, "process_open_fds") > 0
        assert value(text, "process_resident_memory_bytes") > 0
        assert value(text, "process_cpu_seconds_total") > 0
        assert value(text, 'notifyd_webhook_latency_seconds_count{source="billing"}') == 1.0
        assert value(text, 'notifyd_webhook_latency_seconds_sum{source="billing"}') > 0
        assert value(text, "notifyd_database_up") == 1.0
        assert value(text, "notifyd_oldest_due_notice_age_seconds") == 0.0
        assert value(text, "notifyd_dead_letters") == 0.0

        # Due in an hour (the worker leaves it alone), read by a clock 70 minutes ahead:
        # due 10 minutes ago. Two failed ones are the dead letters.
        now = datetime.now(UTC)
        await _queued(db, "acc-2", now + timedelta(hours=1), "queued")
        await _queued(db, "acc-3", now + timedelta(hours=2), "queued")  # not due yet
        await _queued(db, "acc-4", now - timedelta(days=1), "failed")
        await _queued(db, "acc-5", now - timedelta(days=2), "failed")
        assert daemon.daemon.runtime is not None
        daemon.daemon.runtime.clock = lambda: now + timedelta(minutes=70)
        _, text = await scrape(daemon)
    assert 595 <= value(text, "notifyd_oldest_due_notice_age_seconds") <= 605
    assert value(text, "notifyd_dead_letters") == 2.0
    assert value(text, 'notifyd_notices{state="queued"}') == 2.0


async def test_relay_refusal_counts_a_dead_letter(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    smtp_sink.rcpt_replies.extend(["550 5.1.1 No such user"] * 5)
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-1", email="gone@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202

        async def counted() -> float | None:
            found = samples((await scrape(daemon))[1])
            return found.get('notifyd_notices_dead_lettered_total{cause="refused"}')

        assert await eventually(counted, "the refusal counted") == 1.0
        text = (await scrape(daemon))[1]
    assert value(text, "notifyd_dead_letters") == 1.0
    assert 'notifyd_notices_dead_lettered_total{cause="gave_up"}' not in samples(text)


async def test_a_hung_database_reads_as_down_without_hanging_the_scrape(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        assert value((await scrape(daemon))[1], "notifyd_database_up") == 1.0
        # A lock no query of the notices table can pass: the database answers nothing.
        async with db.transaction():
            await db.execute("LOCK TABLE notices IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            async with asyncio.timeout(SCRAPE_DATABASE_TIMEOUT + 5):
                _, text = await scrape(daemon)
            took = time.monotonic() - started
        assert value(text, "notifyd_database_up") == 0.0
        # Unknown, not the last value read: an alert on the age must not see a stale 0.
        assert is_nan(value(text, "notifyd_oldest_due_notice_age_seconds"))
        assert is_nan(value(text, "notifyd_dead_letters"))
        assert value(text, "process_open_fds") > 0  # the rest is still served
        assert took < SCRAPE_DATABASE_TIMEOUT + 2
        assert value((await scrape(daemon))[1], "notifyd_database_up") == 1.0
