"""Background fan-out of broadcasts: batch after batch, each in its own transaction.

Webhooks keep their connections and their speed: a batch is one INSERT ... SELECT of
`batch_size` rows, and the loop yields between batches. A restart resumes from the cursor;
several hosts share the work (`FOR UPDATE SKIP LOCKED` on the broadcast row, per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from notifyd.settings import Settings
from notifyd.storage import broadcasts as broadcast_store
from notifyd.storage import db
from notifyd.storage import notices as notice_store

log = structlog.get_logger(__name__)


class Broadcaster:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Callable[[], Settings],
        message_domain: Callable[[], str],
        on_queued: Callable[[], None],
        poll_seconds: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.clock = clock
        self.pool = pool
        self.settings = settings
        self.message_domain = message_domain
        self.on_queued = on_queued
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="notifyd-broadcasts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)

    async def run_batch(self) -> bool:
        """Fan out one batch of some runnable broadcast; False when there was none."""
        settings = self.settings()
        async with self.pool.acquire() as conn, conn.transaction():
            broadcast = await broadcast_store.next_runnable(conn)
            if broadcast is None:
                return False
            batch = await broadcast_store.fan_out_batch(
                conn,
                broadcast,
                size=settings.broadcasts.batch_size,
                defaults=settings.defaults,
                message_domain=self.message_domain(),
                now=self.clock(),
            )
        if batch.added:
            # Other hosts' workers are woken after the commit, not by it: a NOTIFY takes a
            # lock that every notifying commit waits for, and this batch's commit flushes
            # megabytes of WAL; webhooks queueing a notice due now waited behind it (their
            # COMMIT in Lock:object, sampled from pg_stat_activity during bench/fanout.py).
            async with self.pool.acquire() as conn:
                await notice_store.wake_workers(conn)
            self.on_queued()
        if batch.state == "done":
            log.info("broadcast queued", broadcast_id=str(broadcast.id), notices=batch.queued)
        return True

    async def _loop(self) -> None:
        while True:
            try:
                # Not a poll: the sleep(0) yields so webhooks are served between batches.
                while await self.run_batch():  # noqa: ASYNC110
                    await asyncio.sleep(0)
            except db.UNAVAILABLE as error:
                log.warning("broadcast fan-out paused", error=type(error).__name__)
            except Exception:
                # A bug must not end the fan-out for good: log it and try again later.
                log.exception("broadcast fan-out failed; retrying after a pause")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
