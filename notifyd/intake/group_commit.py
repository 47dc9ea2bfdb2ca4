"""Group commit: concurrent webhook transactions share one COMMIT.

A 2xx to a webhook means its event is committed, so every webhook waits for a commit; a
commit of its own costs a BEGIN, a COMMIT, a WAL flush and a pool round trip each. Here
each item (one webhook) is put in a lane; a lane hands whatever items are waiting to the
batch function in one transaction (which can store them all with one statement per step),
commits once, and only then answers each of them. No delay is added to gather a batch:
while one batch commits the next one fills. A busy lane's COMMIT also begins the next
batch's transaction, in the same round trip.

Jobs are put in lanes by account, so two lanes never lock the same subscriber row: batches
cannot deadlock on each other. When a batch fails, it is rolled back and each of its
items runs again alone, so one bad event costs the others nothing but time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from notifyd.storage.db import Conn
from notifyd.storage.waves import PLANS

log = structlog.get_logger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 64

# A batch's statements take arrays of any length; how they are planned (one generic plan
# a connection, by key) is storage/waves.py's PLANS. In the same round trip as the BEGIN.
BEGIN = f"BEGIN; {PLANS}"


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        pool: asyncpg.Pool,
        lanes: int,
        run_batch: Callable[[Conn, Sequence[Item]], Awaitable[Sequence[Result]]],
        on_batch: Callable[[int], None] = lambda _size: None,
        committed: Callable[[Sequence[Result]], None] = lambda _results: None,
    ) -> None:
        self.pool = pool
        self.run_batch = run_batch
        self.on_batch = on_batch
        # Told of each batch's results once its COMMIT succeeded (and only then), whether
        # or not each caller is still waiting for its own.
        self.committed = committed
        self._queues: list[asyncio.Queue[tuple[Item, asyncio.Future[Result]]]] = [
            asyncio.Queue() for _ in range(max(lanes, 1))
        ]
        self._tasks: list[asyncio.Task[None] | None] = [None] * len(self._queues)

    async def run(self, key: str, item: Item) -> Result:
        """Run `item` in a transaction shared with the items waiting beside it (those of one
        key in order); returns once that transaction committed (or raises what the batch
        function raised for this item alone)."""
        lane = zlib.crc32(key.encode()) % len(self._queues)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queues[lane].put_nowait((item, future))
        task = self._tasks[lane]
        if task is None or task.done():
            # A fresh context: the lane outlives the webhook that started it, and serves
            # the others; its lines (and the sends it starts) must not carry that webhook's
            # request_id.
            self._tasks[lane] = asyncio.create_task(
                self._lane(lane), name=f"commit-lane-{lane}", context=contextvars.Context()
            )
        return await future

    async def close(self) -> None:
        for task in self._tasks:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for queue in self._queues:
            while not queue.empty():
                _item, future = queue.get_nowait()
                if not future.done():
                    future.set_exception(asyncpg.InterfaceError("notifyd is stopping"))

    async def _lane(self, lane: int) -> None:
        queue = self._queues[lane]
        # Between two batches of a busy lane: a connection already in the next transaction.
        ready: PoolConnectionProxy | None = None
        try:
            while True:
                batch = [await queue.get()]
                while len(batch) < MAX_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                try:
                    ready = await self._commit(batch, ready, idle=queue.empty)
                except asyncio.CancelledError:
                    for _item, future in batch:
                        if not future.done():
                            future.set_exception(asyncpg.InterfaceError("notifyd is stopping"))
                    raise
        finally:
            if ready is not None:
                await _roll_back(ready)
                await self.pool.release(ready)

    async def _commit(
        self,
        batch: list[tuple[Item, asyncio.Future[Result]]],
        conn: PoolConnectionProxy | None,
        idle: Callable[[], bool] = lambda: True,
    ) -> PoolConnectionProxy | None:
        """Run and commit `batch` (on `conn`, already in a transaction, if given). Returns
        the connection in the next batch's transaction when items are already waiting
        (`idle()` false: the COMMIT and the next BEGIN share a round trip), else None, so
        that an idle lane holds no transaction open."""
        self.on_batch(len(batch))
        try:
            if conn is None:
                conn = await self.pool.acquire()
                await conn.execute(BEGIN)
            try:
                results = await self.run_batch(conn, [item for item, _future in batch])
                keep = not idle()
                await conn.execute(f"COMMIT; {BEGIN}" if keep else "COMMIT")
            except BaseException:
                await _roll_back(conn)
                await self.pool.release(conn)
                raise
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return None
            log.warning(
                "a shared commit failed; its items run again one by one",
                items=len(batch),
                error=type(error).__name__,
            )
            for item, future in batch:
                await self._commit([(item, future)], None)  # alone: its error is its own
            return None
        try:
            self.committed(results)
        except Exception:  # the commit stands, and its callers must still hear of it
            log.exception("after a shared commit, its results could not be handed on")
        for (_item, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)
        if keep:
            return conn
        await self.pool.release(conn)
        return None


async def _roll_back(conn: Conn) -> None:
    """End the batch's transaction before the connection goes back to the pool (which
    does not reset it); a connection that cannot is closed instead."""
    try:
        await conn.execute("ROLLBACK")  # after a failed COMMIT: only a warning
    except BaseException:
        conn.terminate()


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    if future.done():  # the caller went away (a client that hung up): the work stands
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
