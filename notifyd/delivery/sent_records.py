"""The "sent" records of one event-loop turn, written together.

Each SMTP connection waits for the record of its last message before the relay may accept
the next one (the crash bound, docs/delivery.md), so a record is on every connection's
path. Under load several connections' replies arrive in the same turn of the event loop;
each record used to be its own statement, and on a busy machine its own write to the
database socket, which wakes the server: the largest single cost of a delivery in the
profile. Here the records of one turn share a statement. Nothing waits for another
batch: each batch takes its own pooled connection, so a record is never later than the
next loop turn plus one statement.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from uuid import UUID

import asyncpg

from notifyd.storage import notices as notice_store


class SentRecords:
    def __init__(
        self, pool: asyncpg.Pool, token: UUID, told: Callable[[], Sequence[str]] = tuple
    ) -> None:
        self.pool = pool
        self.token = token
        # The sources with a delivery callback now: their notices' records write it too.
        self.told = told
        self._pending: list[tuple[UUID, str, asyncio.Future[bool]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batches: set[asyncio.Task[None]] = set()

    async def record(self, notice_id: UUID, reply: str) -> bool:
        """Mark the notice sent (if this host still holds its claim); True when recorded.
        Raises what the database raised, for the caller to retry."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = self._loop.create_future()
        if not self._pending:
            # The task's first step runs in the loop's next turn, after every send of this
            # one has added its record.
            # A fresh context: the batch records the sends of many notices, not this one's.
            task = self._loop.create_task(self._write(), context=contextvars.Context())
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        self._pending.append((notice_id, reply, done))
        return await done

    async def _write(self) -> None:
        batch, self._pending = self._pending, []
        try:
            async with self.pool.acquire() as conn:
                recorded = await notice_store.mark_sent_many(
                    conn, [(i, reply) for i, reply, _ in batch], self.token, self.told()
                )
        except Exception as error:
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(error)
            return
        except BaseException:
            for _, _, done in batch:
                done.cancel()
            raise
        for notice_id, _, done in batch:
            if not done.done():
                done.set_result(notice_id in recorded)
