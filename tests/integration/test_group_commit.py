"""Group commit (issue 6): concurrent webhook transactions share one COMMIT, each answered
only after it; a failing job costs the others nothing. On a real PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from notifyd.intake.group_commit import GroupCommit
from notifyd.storage.db import Conn
from tests.conftest import PBX_SECRET, base_config, load_config, running_daemon

Job = Callable[[Conn], Awaitable[int]]


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    await db.execute("CREATE TABLE IF NOT EXISTS gc_rows (n integer PRIMARY KEY)")
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as created:
        yield created


async def one_after_another(conn: Conn, jobs: Sequence[Job]) -> list[int]:
    return [await job(conn) for job in jobs]


def inserting(n: int):  # type: ignore[no-untyped-def]
    async def job(conn: Conn) -> int:
        await conn.execute("INSERT INTO gc_rows (n) VALUES ($1)", n)
        return n

    return job


async def test_concurrent_jobs_share_a_commit_and_return_only_once_committed(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    batches: list[int] = []
    commits = GroupCommit(pool, 1, one_after_another, on_batch=batches.append)
    seen_committed: list[bool] = []

    async def submit(n: int) -> int:
        result = await commits.run("acc-1", inserting(n))
        # Answered: the row must already be visible to everyone else.
        seen_committed.append(await pool.fetchval("SELECT n FROM gc_rows WHERE n = $1", n) == n)
        return result

    try:
        results = await asyncio.gather(*(submit(n) for n in range(40)))
    finally:
        await commits.close()
    assert results == list(range(40))
    assert all(seen_committed)
    assert sum(batches) == 40
    assert max(batches) > 1, batches  # shared commits, not one per job
    assert len(batches) < 40


async def test_a_failing_job_fails_alone_and_the_rest_of_its_batch_commits(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    batches: list[int] = []
    committed: list[int] = []
    commits = GroupCommit(
        pool, 1, one_after_another, on_batch=batches.append, committed=committed.extend
    )

    async def broken(conn: Conn) -> int:
        await conn.execute("INSERT INTO gc_rows (n) VALUES (1000)")
        return int(await conn.fetchval("SELECT 1 / 0"))

    async def python_error(conn: Conn) -> int:
        await conn.execute("INSERT INTO gc_rows (n) VALUES (2000)")
        raise ValueError("a bug in one job")

    jobs = [inserting(n) for n in range(10)]
    jobs[3], jobs[7] = broken, python_error
    try:
        results = await asyncio.gather(
            *(commits.run("acc-1", job) for job in jobs), return_exceptions=True
        )
    finally:
        await commits.close()
    assert isinstance(results[3], asyncpg.DivisionByZeroError)
    assert isinstance(results[7], ValueError)
    assert [r for i, r in enumerate(results) if i not in (3, 7)] == [0, 1, 2, 4, 5, 6, 8, 9]
    stored = [row["n"] for row in await db.fetch("SELECT n FROM gc_rows ORDER BY n")]
    # The failed jobs' own writes were rolled back; everyone else's committed once.
    assert stored == [0, 1, 2, 4, 5, 6, 8, 9]
    # Results are told once committed, and only those: none of a batch rolled back.
    assert sorted(committed) == stored


async def test_jobs_of_one_account_stay_in_one_lane_in_order(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    commits = GroupCommit(pool, 4, one_after_another)
    order: list[int] = []

    def recording(n: int):  # type: ignore[no-untyped-def]
        async def job(conn: Conn) -> int:
            order.append(n)
            await conn.execute("INSERT INTO gc_rows (n) VALUES ($1)", n)
            return n

        return job

    try:
        await asyncio.gather(*(commits.run("acc-7", recording(n)) for n in range(30)))
    finally:
        await commits.close()
    assert order == list(range(30))


async def test_webhooks_posted_together_are_committed_together(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    await db.executemany(
        "INSERT INTO subscribers (account_id, email) VALUES ($1, $2)",
        [(f"acc-{n}", f"user{n}@client.example") for n in range(64)],
    )
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        answers = await asyncio.gather(
            *(
                daemon.post("pbx", sample_event("fax.sent", f"acc-{n}"), PBX_SECRET)
                for n in range(64)
            )
        )
        async with daemon.session.get(f"{daemon.admin_url}/metrics") as response:
            metrics = await response.text()
    assert [status for status, _ in answers] == [202] * 64
    assert await db.fetchval("SELECT count(*) FROM events WHERE type = 'fax.sent'") == 64
    batches = float(re.search(r"^notifyd_ingest_batch_size_count (\S+)$", metrics, re.M)[1])  # type: ignore[index]
    assert 0 < batches < 64  # fewer commits than webhooks


async def test_a_batch_begins_with_the_wave_plans_settings_and_only_the_batch(
    pool: asyncpg.Pool,
) -> None:
    """A batch opens with storage/waves.py's PLANS (generic plans made without sequential
    scans: test_wave_plans.py shows what they are made of). Only inside the batch."""
    commits = GroupCommit(pool, 1, one_after_another)

    async def plan_mode(conn: Conn) -> int:
        mode = (
            await conn.fetchval("SHOW plan_cache_mode"),
            await conn.fetchval("SHOW enable_seqscan"),
        )
        return 1 if mode == ("force_generic_plan", "off") else 0

    try:
        assert await commits.run("acc-1", plan_mode) == 1
    finally:
        await commits.close()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
        assert await conn.fetchval("SHOW enable_seqscan") == "on"
        assert not conn.is_in_transaction()


async def test_a_busy_lanes_commit_begins_the_next_batch_and_an_idle_lane_holds_nothing(
    database_url: str, db: asyncpg.Connection
) -> None:
    """With items waiting, COMMIT and the next BEGIN share a round trip; once the lane has
    nothing to do its connection goes back to the pool outside any transaction."""
    await db.execute("CREATE TABLE gc_rows (n integer PRIMARY KEY)")
    sent: list[str] = []

    async def logging_queries(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda record: sent.append(record.query))

    async with asyncpg.create_pool(
        database_url, min_size=1, max_size=2, init=logging_queries
    ) as pool:
        batches: list[int] = []
        commits = GroupCommit(pool, 1, one_after_another, on_batch=batches.append)
        try:
            # More than one batch's worth at once: the second batch waits for the first.
            results = await asyncio.gather(
                *(commits.run("acc-1", inserting(n)) for n in range(100))
            )
            idle = await db.fetch(
                "SELECT state FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await commits.close()
    assert results == list(range(100))
    assert len(batches) == 2, batches
    begins = [q for q in sent if q.startswith("BEGIN")]
    folded = [q for q in sent if q.startswith("COMMIT; BEGIN")]
    assert (len(begins), len(folded), sent.count("COMMIT")) == (1, 1, 1)
    assert [row["state"] for row in idle] == ["idle"]
    assert await db.fetchval("SELECT count(*) FROM gc_rows") == 100


async def test_a_commit_that_fails_while_beginning_the_next_batch_loses_nothing(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """A constraint checked at COMMIT fails the shared round trip that also begins the next
    batch: the batch's items run again alone, the offending one fails alone, and the batch
    waiting behind it commits as usual."""
    await db.execute("CREATE TABLE gc_deferred (n integer UNIQUE DEFERRABLE INITIALLY DEFERRED)")

    def deferred(n: int):  # type: ignore[no-untyped-def]
        async def job(conn: Conn) -> int:
            await conn.execute("INSERT INTO gc_deferred (n) VALUES ($1)", n)
            return n

        return job

    batches: list[int] = []
    commits = GroupCommit(pool, 1, one_after_another, on_batch=batches.append)
    jobs = [deferred(n) for n in range(100)]
    jobs[5] = deferred(4)  # a duplicate of job 4, found only at COMMIT
    try:
        results = await asyncio.gather(
            *(commits.run("acc-1", job) for job in jobs), return_exceptions=True
        )
    finally:
        await commits.close()
    assert isinstance(results[5], asyncpg.UniqueViolationError)
    assert [r for i, r in enumerate(results) if i != 5] == [n for n in range(100) if n != 5]
    stored = [row["n"] for row in await db.fetch("SELECT n FROM gc_deferred ORDER BY n")]
    assert stored == [n for n in range(100) if n != 5]
    # The first batch of 64, its 64 items again alone, then the 36 that waited behind it.
    assert batches == [64] + [1] * 64 + [36], batches


async def test_a_failing_after_commit_hook_still_answers_every_job(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    def broken(_results: Sequence[int]) -> None:
        raise RuntimeError("a bug in what is told of a commit")

    commits = GroupCommit(pool, 1, one_after_another, committed=broken)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(commits.run("acc-1", inserting(n)) for n in range(5))), 10
        )
    finally:
        await commits.close()
    assert results == list(range(5))
    assert await db.fetchval("SELECT count(*) FROM gc_rows") == 5
