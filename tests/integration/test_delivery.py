"""Delivery against a real SMTP server and PostgreSQL: retries, failures, leases, wake-ups,
and a database that goes away and comes back."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake.facts import IntakeRules
from notifyd.intake.ingest import ingest
from notifyd.settings import CallSettings, DefaultsSettings
from notifyd.storage import db as storage_db
from notifyd.storage import notices as notice_store
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    WAIT,
    Cluster,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
    start_cluster,
    stop_cluster,
)
from tests.integration.queue_support import settled_notices


async def _all_sent(db: asyncpg.Connection, count: int) -> None:
    async with asyncio.timeout(WAIT):
        while await db.fetchval("SELECT count(*) FROM notices WHERE state = 'sent'") < count:
            await asyncio.sleep(0.05)


async def _state_of(db: asyncpg.Connection, account: str, until: str) -> asyncpg.Record:
    """Wait for the account's only notice to reach state `until`."""
    async with asyncio.timeout(WAIT):
        while True:
            row = await db.fetchrow("SELECT * FROM notices WHERE account_id = $1", account)
            if row is not None and row["state"] == until:
                return row
            await asyncio.sleep(0.05)


async def _state(db: asyncpg.Connection, until: str, timeout: float = WAIT) -> asyncpg.Record:
    """Wait for the only notice to reach state `until`."""
    async with asyncio.timeout(timeout):
        while True:
            row = await db.fetchrow("SELECT * FROM notices")
            if row is not None and row["state"] == until:
                return row
            await asyncio.sleep(0.05)


async def _listening(db: asyncpg.Connection) -> list[int]:
    """The daemon's LISTEN connection(s), once there is one: from then on a NOTIFY wakes
    its worker (it also wakes itself once, for what was queued before)."""
    async with asyncio.timeout(WAIT):
        while True:
            rows = await db.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN%'"
            )
            if rows:
                return [row["pid"] for row in rows]
            await asyncio.sleep(0.05)


async def test_smtp_451_then_250_delivers_once(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    smtp_sink.rcpt_replies.append("451 4.7.1 Greylisted, try again later")
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-1", email="grey@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        await smtp_sink.wait_for(1)
        [row] = await settled_notices(db)
    assert row["state"] == "sent"
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.rcpt_commands == 2
    assert row["attempts"] == 2
    assert row["last_error"] is None


async def test_smtp_550_fails_the_notice_without_retrying(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    smtp_sink.rcpt_replies.extend(["550 5.1.1 No such user"] * 5)
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-1", email="nobody@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        # Failed for good: a retry would have queued it again (every 0.2-1 s here).
        [row] = await settled_notices(db)
    assert row["state"] == "failed"
    assert smtp_sink.rcpt_commands == 1
    assert smtp_sink.messages == []
    assert row["attempts"] == 1
    assert row["last_error"].startswith("550")


async def test_smtp_421_after_data_is_retried(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    smtp_sink.data_replies.append("421 4.3.2 Service shutting down")
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-1", email="later@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        await smtp_sink.wait_for(1)
        row = await _state(db, "sent")
    assert row["attempts"] == 2
    assert smtp_sink.data_commands == 2


# The dead host's lease: longer than any run of the test, which ends it itself.
LEASE = 600.0


async def test_notice_claimed_by_a_host_that_died_is_delivered_after_its_lease(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    pool = await storage_db.create_pool(
        database_url, load_config(tmp_path, base_config(tmp_path, database_url, None)).database
    )
    try:
        created = parse_event(
            json.dumps(
                sample_event("account.created", "acc-9", email="lease@client.example")
            ).encode()
        )
        await ingest(
            pool,
            source="billing",
            webhook_id="msg-lease",
            event=created,
            rules=IntakeRules(
                DefaultsSettings(quiet_hours=None), CallSettings(), {}, "voip.example"
            ),
            now=datetime.now(UTC),
        )
        async with pool.acquire() as conn:
            claim = await notice_store.claim_due(conn, 10, "dead-host:1", uuid.uuid4(), LEASE)
    finally:
        await pool.close()
    assert len(claim.notices) == 1

    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings):
        # Another host queues a notice due now: this worker's claim takes it, and would take
        # the dead host's too were its lease not respected. Once that one is sent, a claim
        # has come and gone (no sleep for the worker to have had its chance).
        pool = await storage_db.create_pool(database_url, settings.database)
        try:
            other = sample_event("account.created", "acc-8", email="other@client.example")
            await ingest(
                pool,
                source="billing",
                webhook_id="msg-other",
                event=parse_event(json.dumps(other).encode()),
                rules=IntakeRules(settings.defaults, settings.calls, {}, "voip.example"),
                now=datetime.now(UTC),
            )
        finally:
            await pool.close()
        await smtp_sink.wait_for(1)
        sent_first = await _state_of(db, "acc-8", "sent")
        assert [str(m["To"]) for m in smtp_sink.messages] == ["other@client.example"]
        assert (await _state_of(db, "acc-9", "sending"))["claimed_by"] == "dead-host:1"
        # The lease runs out (as the clock would move it, without a machine-speed race).
        await db.execute("UPDATE notices SET due_at = now() WHERE claimed_by = 'dead-host:1'")
        await smtp_sink.wait_for(2)
        row = await _state_of(db, "acc-9", "sent")
        await settled_notices(db)
    assert sent_first["attempts"] == 1
    assert row["attempts"] == 2
    assert row["claimed_by"] is None
    assert [str(m["To"]) for m in smtp_sink.messages] == [
        "other@client.example",
        "lease@client.example",
    ]


async def test_notify_from_another_host_wakes_the_worker_before_its_poll(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = base_config(tmp_path, database_url, smtp_sink.port, delivery={"poll_seconds": 60})
    settings = load_config(tmp_path, config)
    async with running_daemon(settings):
        await _listening(db)
        # Another host's intake: same database, not this daemon's HTTP.
        pool = await storage_db.create_pool(database_url, settings.database)
        try:
            body = (
                '{"type": "account.created", "timestamp": "2026-11-22T10:00:00Z", "data": '
                '{"account_id": "acc-n", "email": "n@client.example", "username": "n"}}'
            )
            await ingest(
                pool,
                source="billing",
                webhook_id="msg-notify",
                event=parse_event(body.encode()),
                rules=IntakeRules(settings.defaults, settings.calls, {}, "voip.example"),
                now=datetime.now(UTC),
            )
        finally:
            await pool.close()
        started = time.monotonic()
        await smtp_sink.wait_for(1, timeout=10)
    assert time.monotonic() - started < 5  # far under the 60 s poll


@pytest.fixture
async def own_cluster() -> AsyncIterator[Cluster]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    cluster = await asyncio.to_thread(start_cluster)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(stop_cluster, cluster)
        shutil.rmtree(cluster.root, ignore_errors=True)


async def test_database_down_answers_503_and_recovers_without_restart(
    tmp_path: Path, own_cluster: Cluster, smtp_sink: SmtpSink
) -> None:
    from notifyd.storage import schema

    conn = await asyncpg.connect(own_cluster.dsn("postgres"))
    await schema.migrate(conn)
    await conn.close()
    config = base_config(
        tmp_path,
        own_cluster.dsn("postgres"),
        smtp_sink.port,
        database={"connect_timeout_seconds": 1},
    )
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        first = await daemon.post("billing", sample_event("account.created", "a1"), BILLING_SECRET)
        assert first[0] == 202
        await smtp_sink.wait_for(1)

        await own_cluster.server.stop()
        status, body = await daemon.post("pbx", sample_event("call.missed", "a1"), PBX_SECRET)
        assert status == 503
        assert body["error"] == "unavailable"
        async with daemon.session.get(f"{daemon.base_url}/readyz") as response:
            assert response.status == 503

        await own_cluster.server.start()
        # Pooled connections died with the server; the first requests may still see that.
        async with asyncio.timeout(WAIT):
            while True:
                status, body = await daemon.post(
                    "pbx", sample_event("call.missed", "a1"), PBX_SECRET
                )
                if status == 202:
                    break
                assert status == 503
                await asyncio.sleep(0.2)
        messages = await smtp_sink.wait_for(2)
        async with daemon.session.get(f"{daemon.base_url}/readyz") as response:
            assert response.status == 200
    assert "Apel nepreluat" in messages[1]["Subject"]


async def test_listener_killed_by_the_database_reconnects_and_wakes_again(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = base_config(tmp_path, database_url, smtp_sink.port, delivery={"poll_seconds": 60})
    settings = load_config(tmp_path, config)

    async def listener_pids() -> list[int]:
        rows = await db.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%'"
        )
        return [row["pid"] for row in rows]

    async def another_host_queues(account: str) -> None:
        pool = await storage_db.create_pool(database_url, settings.database)
        try:
            event = sample_event("account.created", account, email=f"{account}@client.example")
            await ingest(
                pool,
                source="billing",
                webhook_id=f"msg-{account}",
                event=parse_event(json.dumps(event).encode()),
                rules=IntakeRules(settings.defaults, settings.calls, {}, "voip.example"),
                now=datetime.now(UTC),
            )
        finally:
            await pool.close()

    async with running_daemon(settings):
        async with asyncio.timeout(WAIT):
            while not (pids := await listener_pids()):
                await asyncio.sleep(0.05)
        # What a PostgreSQL restart or a proxy's idle cut does to the LISTEN connection.
        await db.execute("SELECT pg_terminate_backend($1)", pids[0])
        async with asyncio.timeout(WAIT):
            while (new := await listener_pids()) in ([], pids):
                await asyncio.sleep(0.05)
        await another_host_queues("after-reconnect")
        await smtp_sink.wait_for(1, timeout=10)  # well under the 60 s poll
    assert new != pids


async def test_a_send_slower_than_the_lease_keeps_its_claim_and_is_sent_once(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    smtp_sink.data_delay = 2.0
    config = base_config(
        tmp_path,
        database_url,
        smtp_sink.port,
        delivery={"lease_seconds": 0.6, "poll_seconds": 0.1},
    )
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        event = sample_event("account.created", "acc-1", email="slow@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        await smtp_sink.wait_for(1)
        # Sent and recorded. A second claim of it, had the lease not been renewed, would
        # have begun at 0.6 s and still be sending; the daemon's stop lets it finish.
        [row] = await settled_notices(db)
    assert row["state"] == "sent"
    assert row["attempts"] == 1
    assert smtp_sink.data_commands == 1
    assert len(smtp_sink.messages) == 1


async def test_timeout_after_data_is_retried_and_counted_as_a_possible_duplicate(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    # The server is slower than our timeout at the final ".", then accepts anyway: the one
    # case where at-least-once delivery may duplicate (SPEC §5).
    smtp_sink.data_delay = 1.5
    config = base_config(tmp_path, database_url, smtp_sink.port, smtp={"timeout_seconds": 0.5})
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        event = sample_event("account.created", "acc-1", email="cut@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        async with asyncio.timeout(WAIT):
            while smtp_sink.data_commands < 1:
                await asyncio.sleep(0.02)
        smtp_sink.data_delay = 0
        row = await _state(db, "sent")
        async with daemon.session.get(f"{daemon.admin_url}/metrics") as response:
            metrics = await response.text()
    assert row["attempts"] == 2
    assert "notifyd_possible_duplicates_total 1.0" in metrics
    assert 'notifyd_smtp_errors_total{kind="timeout"} 1.0' in metrics
    assert len(smtp_sink.messages) <= 2


async def test_an_idle_worker_sleeps_until_the_next_notice_its_claim_saw_is_due(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """The claim also answers "when is the next notice due" (it used to be a query of its
    own after every claim that found less than it asked for): a worker that found nothing
    due sleeps until then, not for the whole poll interval, and with nothing to wake it."""
    config = base_config(tmp_path, database_url, smtp_sink.port)
    config["delivery"]["poll_seconds"] = 60.0
    settings = load_config(tmp_path, config)
    pool = await storage_db.create_pool(database_url, settings.database)
    try:
        event = sample_event("account.created", "acc-1", email="later@client.example")
        await ingest(
            pool,
            source="billing",
            webhook_id="msg-later",
            event=parse_event(json.dumps(event).encode()),
            rules=IntakeRules(
                DefaultsSettings(quiet_hours=None), CallSettings(), {}, "voip.example"
            ),
            now=datetime.now(UTC),
        )
    finally:
        await pool.close()
    await db.execute("UPDATE notices SET due_at = now() + interval '1.5 seconds'")
    due_from = time.monotonic()
    async with running_daemon(settings):
        await smtp_sink.wait_for(1)
        waited = time.monotonic() - due_from
    assert 1.4 <= waited < 10, waited
    assert len(smtp_sink.messages) == 1


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many notices each claim_due of the test's daemon took, in order."""
    taken: list[int] = []
    claim_due = notice_store.claim_due

    async def counted(*args: object, **kwargs: object) -> notice_store.Claim:
        claim = await claim_due(*args, **kwargs)  # type: ignore[arg-type]
        taken.append(len(claim.notices))
        return claim

    monkeypatch.setattr(notice_store, "claim_due", counted)
    return taken


async def test_notices_a_commit_queues_due_now_are_sent_without_a_claim_of_their_own(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    db: asyncpg.Connection,
    claims: list[int],
) -> None:
    """The commit that queues a notice due now claims it for this host's worker, which
    sends it straight away: no wake-up and claim round trip between the webhook's commit
    and its email, no second write of the row. Before, each cost one claim at least (and,
    before that, a "next due" query and more claims: 18 for these five)."""
    config = base_config(tmp_path, database_url, smtp_sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        # The start's own claims: the first, and the one its listener's wake-up brings
        # once it is connected.
        await _listening(db)
        async with asyncio.timeout(WAIT):
            while len(claims) < 2:
                await asyncio.sleep(0.02)
        before = len(claims)
        for n in range(1, 6):
            event = sample_event("account.created", f"acc-{n}", email=f"u{n}@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
            await smtp_sink.wait_for(n)
        await _all_sent(db, 5)
        during = claims[before:]
    assert sum(during) == 0, during  # none was left for a claim to find
    # Only the worker's polls (every 0.5 s here): nothing woke it for these notices.
    assert len(during) <= 4, during
    rows = await db.fetch("SELECT attempts, claimed_by, state FROM notices")
    assert [(r["attempts"], r["claimed_by"], r["state"]) for r in rows] == [(1, None, "sent")] * 5


async def test_commits_of_notices_deferred_by_quiet_hours_cost_the_worker_no_claim(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    db: asyncpg.Connection,
    claims: list[int],
) -> None:
    """Issue 22: a commit whose notices wait for the quiet hours to end used to wake the
    worker all the same, for a claim that found nothing (0.12 a webhook in the ingest
    benchmark). Now the worker, asleep until its next poll, hears only of notices due
    before then, and no NOTIFY is sent for these: no claim while they are queued."""
    config = base_config(tmp_path, database_url, smtp_sink.port)
    config["defaults"]["quiet_hours"] = "00:00-23:59"
    config["delivery"]["poll_seconds"] = 60.0  # no poll during the test: only wake-ups
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await _listening(db)
        async with asyncio.timeout(WAIT):
            while len(claims) < 2:  # the start's first claim, and its listener's
                await asyncio.sleep(0.02)
        before = len(claims)
        for n in range(1, 6):
            created = sample_event("account.created", f"acc-{n}", email=f"u{n}@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            missed = sample_event("call.missed", f"acc-{n}")
            assert (await daemon.post("pbx", missed, PBX_SECRET))[0] == 202
        # The welcome emails are due now (not held by quiet hours): each is claimed by
        # its own commit and sent without a claim. A NOTIFY, had one been sent for the
        # missed calls, would have arrived meanwhile, and the claim it brings.
        await smtp_sink.wait_for(5)
        await asyncio.sleep(0.5)
        during = claims[before:]
        rows = await db.fetch("SELECT kind, state, due_at > now() AS later FROM notices")
    assert during == []
    assert (
        sorted((r["kind"], r["state"], r["later"]) for r in rows)
        == [("account.created", "sent", False)] * 5 + [("call.missed", "queued", True)] * 5
    )
