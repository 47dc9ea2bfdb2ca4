"""Database faults: PostgreSQL stopped (fast, smart), restarted, and its backends terminated
while webhooks arrive and notices are being delivered.

What must hold whatever the fault: no 2xx for a webhook whose event is not committed (every
202 has its event row afterwards; a 503 may or may not, and the sender's retry with the same
webhook-id gets 202 or a duplicate 200 naming the same event); 503 while the database cannot
take it; every accepted event's email sent once the database is back, each once (at most
the documented duplicate bound: the notices in flight when it went away); and the LISTEN
connection back, so a notice queued by another host wakes this worker before its poll.

The daemon is configured with an external URL to a PostgreSQL of this module's own, which
the tests stop and start; the session's shared cluster is never touched. Larger bursts
with NOTIFYD_NIGHTLY=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake.facts import IntakeRules
from notifyd.intake.ingest import ingest
from notifyd.storage import db as storage_db
from notifyd.storage import schema
from tests.conftest import (
    BILLING_SECRET,
    WAIT,
    Cluster,
    Running,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
    start_cluster,
    stop_cluster,
)

NIGHTLY = os.environ.get("NOTIFYD_NIGHTLY") == "1"
# Webhooks in one burst: enough that the fault lands in the middle of commits and sends.
BURST = 600 if NIGHTLY else 60
SENDERS = 8  # concurrent PBX connections
TEMPLATE = "faults_template"
# A burst on a loaded 2-core machine, with an outage in the middle, retries included.
BURST_WAIT = 60.0


# -- a PostgreSQL of this module's own ---------------------------------------------------------


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """Stopped and started by the tests of this module (which run in one process, in order:
    `--dist loadfile`); never the session's cluster."""
    cluster = start_cluster()
    try:

        async def template() -> None:
            conn = await asyncpg.connect(cluster.dsn("postgres"))
            try:
                await conn.execute(f"CREATE DATABASE {TEMPLATE}")
            finally:
                await conn.close()
            conn = await asyncpg.connect(cluster.dsn(TEMPLATE))
            try:
                await schema.migrate(conn)
            finally:
                await conn.close()

        asyncio.run(template())
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
async def fault_url(own_cluster: Cluster) -> AsyncIterator[str]:
    """A fresh migrated database on the module's cluster, started if a test left it down."""
    await own_cluster.server.start()
    name = f"f_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(own_cluster.dsn("postgres"))
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await conn.close()
    yield own_cluster.dsn(name)
    await own_cluster.server.start()
    conn = await asyncpg.connect(own_cluster.dsn("postgres"))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def _delivery_state(conn: asyncpg.Connection, smtp_sink: SmtpSink) -> str:
    rows = await conn.fetch(
        "SELECT state, claimed_by IS NOT NULL AS claimed, count(*) FROM notices "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    states = {f"{row['state']}{'/claimed' if row['claimed'] else ''}": row["count"] for row in rows}
    return f"notices: {states}, emails received: {len(smtp_sink.messages)}"


def _postmaster_pid(cluster: Cluster) -> int:
    running = cluster.server._postmaster()
    assert running is not None, "the test's PostgreSQL is not running"
    return running[0]


async def _until_stopped(cluster: Cluster, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while cluster.server.is_running():
            await asyncio.sleep(0.05)


async def stop_fast(cluster: Cluster, _url: str) -> None:
    """pg_ctl stop -m fast: every session is cut at once (57P01), then a clean checkpoint."""
    os.kill(_postmaster_pid(cluster), signal.SIGINT)
    await _until_stopped(cluster)


async def terminate_backends(_cluster: Cluster, url: str) -> None:
    """What an operator's pg_terminate_backend, a failover proxy or an idle cut does: the
    server stays up, every session of the database dies (the LISTEN one too)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()


# -- the PBX side ------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the senders were told, per webhook-id."""

    answers: dict[str, list[int]] = field(default_factory=dict)
    # The event id of every 2xx: (status, event_id) in the order they came.
    accepted: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # Statuses answered to the posts sent once the database was down (a post sent before
    # may have committed and be answered 2xx after the server stopped: that is right).
    while_down: list[int] = field(default_factory=list)
    down: bool = False

    def statuses(self) -> Counter[int]:
        return Counter(status for seen in self.answers.values() for status in seen)


async def send_until_accepted(
    daemon: Running, ledger: Ledger, event: dict[str, Any], webhook_id: str, deadline: float
) -> None:
    """Post as a PBX does: the same webhook-id again after a 503 or a network error, until a
    2xx. Anything else is a failure of the test."""
    seen = ledger.answers.setdefault(webhook_id, [])
    while True:
        assert time.monotonic() < deadline, f"{webhook_id} never accepted: {seen}"
        sent_while_down = ledger.down
        try:
            status, body = await daemon.post(
                "billing", event, BILLING_SECRET, webhook_id=webhook_id
            )
        except (aiohttp.ClientError, TimeoutError):
            seen.append(0)
            await asyncio.sleep(0.1)
            continue
        seen.append(status)
        if sent_while_down and ledger.down:
            ledger.while_down.append(status)
        if status in (200, 202):
            assert body["duplicate"] is (status == 200), body
            ledger.accepted.setdefault(webhook_id, []).append((status, body["event_id"]))
            return
        assert status == 503, (status, body)
        assert body["error"] == "unavailable"
        await asyncio.sleep(0.1)


def welcome(index: int) -> tuple[str, dict[str, Any]]:
    account = f"acc-f{index}"
    return account, sample_event("account.created", account, email=f"f{index}@client.example")


async def burst(daemon: Running, ledger: Ledger, count: int) -> None:
    deadline = time.monotonic() + BURST_WAIT
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def sender() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            _account, event = welcome(index)
            await send_until_accepted(daemon, ledger, event, f"msg-f{index}", deadline)

    await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def check_no_uncommitted_2xx(db_url: str, ledger: Ledger, count: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        receipts = {
            row["webhook_id"]: str(row["event_id"])
            for row in await conn.fetch(
                "SELECT r.webhook_id, r.event_id FROM webhook_receipts r "
                "JOIN events e ON e.id = r.event_id WHERE r.source = 'billing'"
            )
        }
        events = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    assert len(ledger.accepted) == count
    for webhook_id, answers in ledger.accepted.items():
        for _status, event_id in answers:
            # Every 2xx names the one committed event of its webhook-id.
            assert receipts.get(webhook_id) == event_id, (webhook_id, answers)
    assert events == count  # and no retry stored a second event


async def check_each_sent_once(
    smtp_sink: SmtpSink, db_url: str, count: int, in_flight_bound: int
) -> None:
    """Each welcome email arrives; a second copy only within the bound: a notice whose 250
    could not be recorded before its lease ended (docs/delivery.md)."""
    conn = await asyncpg.connect(db_url)
    try:
        done = f"notices: {{'sent': {count}}}, emails received: "
        try:
            async with asyncio.timeout(BURST_WAIT):
                while not (await _delivery_state(conn, smtp_sink)).startswith(done):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(await _delivery_state(conn, smtp_sink)) from None
        sent = await conn.fetchval("SELECT count(*) FROM notices WHERE state = 'sent'")
    finally:
        await conn.close()
    assert sent == count
    copies = Counter(rcpt for _sender, rcpts in smtp_sink.envelopes for rcpt in rcpts)
    assert set(copies) == {f"f{index}@client.example" for index in range(count)}
    duplicated = {rcpt: n for rcpt, n in copies.items() if n > 1}
    assert len(duplicated) <= in_flight_bound, duplicated
    assert all(n == 2 for n in duplicated.values()), duplicated


# -- the tests ---------------------------------------------------------------------------------


def fault_config(tmp_path: Path, url: str, smtp_port: int, **delivery: Any) -> dict[str, Any]:
    return base_config(
        tmp_path,
        url,
        smtp_port,
        database={"connect_timeout_seconds": 2, "pool_min": 1, "pool_max": 6},
        # A lease short enough that a claim lost with a connection comes back within the
        # test, long enough that a short outage's "sent" records are written in time.
        delivery={"lease_seconds": 6, "concurrency": 4, **delivery},
    )


async def _readyz(daemon: Running) -> int:
    async with daemon.session.get(f"{daemon.base_url}/readyz") as response:
        return response.status


Fault = Callable[[Cluster, str], Awaitable[None]]


@pytest.mark.parametrize(
    ("fault", "restart"),
    [(stop_fast, True), (terminate_backends, False)],
    ids=["fast-stop", "terminate-backends"],
)
async def test_a_fault_during_a_burst_loses_nothing_and_acknowledges_only_commits(
    tmp_path: Path,
    own_cluster: Cluster,
    fault_url: str,
    smtp_sink: SmtpSink,
    fault: Fault,
    restart: bool,
) -> None:
    # Sends take a while, so the fault also lands on deliveries in progress.
    smtp_sink.data_delay = 0.02
    settings = load_config(tmp_path, fault_config(tmp_path, fault_url, smtp_sink.port))
    ledger = Ledger()
    async with running_daemon(settings) as daemon:
        posting = asyncio.create_task(burst(daemon, ledger, BURST))
        async with asyncio.timeout(BURST_WAIT):
            while len(ledger.accepted) < BURST // 3 and not posting.done():
                await asyncio.sleep(0.01)
        assert len(smtp_sink.messages) < BURST  # delivery still going on
        await fault(own_cluster, fault_url)
        ledger.down = restart
        if restart:
            # Down long enough for every sender to be told 503 at least once.
            async with asyncio.timeout(WAIT):
                while len(ledger.while_down) < SENDERS and not posting.done():
                    await asyncio.sleep(0.05)
            assert await _readyz(daemon) == 503
            assert ledger.while_down
            assert set(ledger.while_down) <= {0, 503}, ledger.while_down
            ledger.down = False
            await own_cluster.server.start()
        async with asyncio.timeout(BURST_WAIT):
            await posting
        await check_no_uncommitted_2xx(fault_url, ledger, BURST)
        await check_each_sent_once(smtp_sink, fault_url, BURST, in_flight_bound=4 + 2)
        assert await _readyz(daemon) == 200


async def test_a_smart_stop_then_a_fast_one_loses_nothing(
    tmp_path: Path, own_cluster: Cluster, fault_url: str, smtp_sink: SmtpSink
) -> None:
    """A smart stop refuses new connections and waits for every session to end; the
    daemon's open ones still commit (202 is then the truth), new ones cannot be had (503,
    /readyz 503). The daemon's LISTEN connection keeps the server in that state, as
    docs/embedded-postgresql.md says: the operator ends it with a fast stop."""
    smtp_sink.data_delay = 0.02
    settings = load_config(tmp_path, fault_config(tmp_path, fault_url, smtp_sink.port))
    ledger = Ledger()
    async with running_daemon(settings) as daemon:
        posting = asyncio.create_task(burst(daemon, ledger, BURST))
        async with asyncio.timeout(BURST_WAIT):
            while len(ledger.accepted) < BURST // 3 and not posting.done():
                await asyncio.sleep(0.01)
        os.kill(_postmaster_pid(own_cluster), signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            while await _readyz(daemon) != 503:
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the burst goes on against the stopping server
        await stop_fast(own_cluster, fault_url)
        assert await _readyz(daemon) == 503
        await own_cluster.server.start()
        async with asyncio.timeout(BURST_WAIT):
            await posting
        await check_no_uncommitted_2xx(fault_url, ledger, BURST)
        await check_each_sent_once(smtp_sink, fault_url, BURST, in_flight_bound=4 + 2)


async def _listener_pids(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%'"
        )
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


@pytest.mark.parametrize("fault", [stop_fast, terminate_backends], ids=["restart", "terminate"])
async def test_after_a_fault_a_notice_queued_by_another_host_wakes_the_worker(
    tmp_path: Path, own_cluster: Cluster, fault_url: str, smtp_sink: SmtpSink, fault: Fault
) -> None:
    # A 60 s poll: only a NOTIFY on a re-established LISTEN can explain an email in seconds.
    settings = load_config(
        tmp_path, fault_config(tmp_path, fault_url, smtp_sink.port, poll_seconds=60)
    )
    async with running_daemon(settings) as daemon:
        async with asyncio.timeout(WAIT):
            while not (before := await _listener_pids(fault_url)):
                await asyncio.sleep(0.05)
        await fault(own_cluster, fault_url)
        await own_cluster.server.start()
        async with asyncio.timeout(WAIT):
            while await _readyz(daemon) != 200:
                await asyncio.sleep(0.1)
        # The LISTEN is back (its reconnection backs off, 0.5 s doubling: a fixed sleep
        # could end before it, and the email then came from the wake-up that follows the
        # reconnection, not from a NOTIFY).
        async with asyncio.timeout(WAIT):
            while not set(await _listener_pids(fault_url)) - set(before):
                await asyncio.sleep(0.05)
        # That wake-up's claim, for what was queued while not listening, is over within
        # this; the worker then sleeps its 60 s, so only the NOTIFY can explain an email.
        await asyncio.sleep(0.3)
        # Another host's intake: the same database, not this daemon's HTTP.
        pool = await storage_db.create_pool(fault_url, settings.database)
        try:
            event = sample_event("account.created", "acc-other", email="other@client.example")
            await ingest(
                pool,
                source="billing",
                webhook_id="msg-other-host",
                event=parse_event(json.dumps(event).encode()),
                rules=IntakeRules(settings.defaults, settings.calls, {}, "voip.example"),
                now=datetime.now(UTC),
            )
        finally:
            await pool.close()
        started = time.monotonic()
        await smtp_sink.wait_for(1, timeout=WAIT)
        assert time.monotonic() - started < WAIT  # far under the 60 s poll
        after = await _listener_pids(fault_url)
    assert after
    assert set(after).isdisjoint(before)
