"""Periodic work, the only APScheduler import. Jobs that must run once across hosts take a
PostgreSQL advisory lock; every job is idempotent, so running late or twice is harmless."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from notifyd.intake import SPENDING_WINDOW
from notifyd.settings import Settings
from notifyd.storage import attachments as attachment_store
from notifyd.storage import credit as credit_store
from notifyd.storage import db
from notifyd.storage import events as event_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)

# Advisory lock keys, one per job that must not run on two hosts at once.
PURGE_RECEIPTS_LOCK = 0x6E6F746901
PURGE_FILES_LOCK = 0x6E6F746902


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
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
    return True


class Jobs:
    def __init__(self, pool: asyncpg.Pool, settings: Callable[[], Settings]) -> None:
        self.pool = pool
        self.settings = settings
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
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

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
