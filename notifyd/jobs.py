"""Periodic work, the only APScheduler import. Jobs that must run once across hosts take a
PostgreSQL advisory lock; every job is idempotent, so running late or twice is harmless."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from notifyd.intake.facts import SPENDING_WINDOW
from notifyd.settings import Settings
from notifyd.storage import attachments as attachment_store
from notifyd.storage import credit as credit_store
from notifyd.storage import db
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)

# Advisory lock keys, one per job that must not run on two hosts at once.
PURGE_RECEIPTS_LOCK = 0x6E6F746901
PURGE_FILES_LOCK = 0x6E6F746902
DIGESTS_LOCK = 0x6E6F746903
# Digest periods gathered per transaction: whole periods, so a batch never splits one.
DIGEST_GROUPS_PER_BATCH = 1000


async def run_exclusive(
    pool: asyncpg.Pool, key: int, job: Callable[[Conn], Awaitable[None]]
) -> bool:
    """Run `job` if no other host holds `key`; False when skipped."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return False
        try:
            await job(conn)
        finally:
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
            except BaseException:
                # The pool does not reset sessions: a connection still holding the lock
                # must not go back to it (closing it releases the lock).
                conn.terminate()
                raise
    return True


async def flush_digests(
    pool: asyncpg.Pool, now: datetime, message_domain: str, on_queued: Callable[[], None]
) -> tuple[int, int] | None:
    """Queue every digest due at `now` (batch after batch), once across hosts: (digests,
    notices told), or None when another host is doing it."""
    total = [0, 0]

    async def flush(conn: Conn) -> None:
        while True:
            async with conn.transaction():
                digests, items = await notice_store.flush_digests(
                    conn, now, DIGEST_GROUPS_PER_BATCH, message_domain
                )
                if digests:
                    await notice_store.wake_workers(conn)
            total[0] += digests
            total[1] += items
            if digests:
                on_queued()
            if digests < DIGEST_GROUPS_PER_BATCH:
                return

    if not await run_exclusive(pool, DIGESTS_LOCK, flush):
        return None
    if total[0]:
        log.info("digests queued", digests=total[0], notices=total[1])
    return total[0], total[1]


class Jobs:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Callable[[], Settings],
        *,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.on_queued = on_queued
        self.clock = clock
        self.scheduler = AsyncIOScheduler(
            # Late runs are not skipped (APScheduler's default grace is 1 s): a job missed
            # while the daemon was down or busy runs once when it can, not never.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )

    def start(self) -> None:
        # First run soon after start, so a backlog left by downtime is handled at once.
        self.scheduler.add_job(
            self.purge_receipts,
            "interval",
            hours=1,
            id="purge_receipts",
            next_run_time=datetime.now(UTC) + timedelta(seconds=30),
        )
        self.scheduler.add_job(
            self.purge_files,
            "interval",
            hours=1,
            id="purge_files",
            next_run_time=datetime.now(UTC) + timedelta(seconds=40),
        )
        # Digests go out at whole hours and at subscribers' daily times; checking every 20 s
        # sends them within seconds of their time, and the first run (at start) sends any
        # that fell due while the daemon was down.
        self.scheduler.add_job(
            self.digests,
            "interval",
            seconds=20,
            id="digests",
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def digests(self) -> None:
        try:
            await flush_digests(
                self.pool, self.clock(), self.settings().message_domain, self.on_queued
            )
        except db.UNAVAILABLE as error:
            log.warning("digests postponed: database unavailable", error=type(error).__name__)

    async def purge_receipts(self) -> None:
        days = self.settings().webhooks.idempotency_days

        async def purge(conn: Conn) -> None:
            removed = await event_store.purge_receipts(conn, days)
            log.info("forgot old webhook ids", removed=removed, older_than_days=days)

        try:
            await run_exclusive(self.pool, PURGE_RECEIPTS_LOCK, purge)
        except db.UNAVAILABLE as error:
            log.warning("purge skipped: database unavailable", error=type(error).__name__)

    async def purge_files(self) -> None:
        """Clears attachment bytes past their retention and balance history past its use."""

        async def purge(conn: Conn) -> None:
            files = await attachment_store.purge_due(conn)
            history = await credit_store.purge_history(
                conn, datetime.now(UTC) - 2 * SPENDING_WINDOW
            )
            log.info("purged expired data", attachments=files, balance_history=history)

        try:
            await run_exclusive(self.pool, PURGE_FILES_LOCK, purge)
        except db.UNAVAILABLE as error:
            log.warning("purge skipped: database unavailable", error=type(error).__name__)
