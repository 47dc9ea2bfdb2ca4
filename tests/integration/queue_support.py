"""Waiting for the daemon's work to end as its database records it, rather than sleeping
and hoping: before a test asserts "nothing more was sent", it waits until no notice is
queued or being sent.

A notice is recorded `sent` only after the relay accepted it (the record is on the
connection's path, docs/delivery.md), and a send that did not end in an acceptance leaves
the notice `queued` (a retry) or `failed`. So once no notice is queued or sending, nothing
more is on its way to the relay, and what an SMTP sink received is final. Provided nothing
can still queue a notice meanwhile: a webhook's notices are committed before it is answered
202 (so after the answer they are there), a broadcast's once its state is `done`; notices
`held` for a digest or a burst's follow-up wait for the digest job, which a test runs.
Count the sink's messages once the daemon has stopped: a stop lets the sends in progress
finish, so even a send the database never saw (a bug's) has arrived by then.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg

from tests.conftest import WAIT

QUERY = """
SELECT id, kind, state, account_id, recipient, attempts, due_at, last_error,
       state = 'sending' OR (state = 'queued' AND ($1::interval IS NULL
                                                   OR due_at <= now() + $1::interval))
           AS unfinished
FROM notices ORDER BY created_at, id
"""


async def settled_notices(
    db: asyncpg.Connection, *, later: timedelta | None = None, timeout: float = WAIT
) -> list[asyncpg.Record]:
    """Every notice (id, kind, state, account_id, recipient, attempts, due_at, last_error),
    in the order they were created, once none is queued or being sent; fails after
    `timeout` with the unfinished ones.

    `later`: a notice queued to be due more than this from now (quiet hours) is waiting,
    not unfinished: nothing sends it before then, and the test checks its due_at."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                rows = await db.fetch(QUERY, later)
                if not any(row["unfinished"] for row in rows):
                    return rows
                await asyncio.sleep(0.05)
    except TimeoutError:
        unfinished = [dict(row) for row in await db.fetch(QUERY, later) if row["unfinished"]]
        raise AssertionError(f"notices still unfinished after {timeout} s: {unfinished}") from None


async def kinds_and_states(db: asyncpg.Connection) -> list[tuple[str, str]]:
    """(kind, state) of every notice once none is queued or being sent."""
    return [(row["kind"], row["state"]) for row in await settled_notices(db)]
