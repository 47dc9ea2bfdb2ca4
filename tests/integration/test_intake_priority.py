"""The intake before delivery, and its bound (docs/delivery.md "The webhooks first"): while
a webhook waits for its commit the worker starts no send beyond its floor, a quarter of
`[delivery] concurrency`, and keeps sending within it; once no webhook waits, every slot.

A webhook is held in its commit deterministically, not by load: the test locks its
subscriber's row, which the webhook's wave locks too (`store_and_lock`). A slow relay
(each DATA takes a while) keeps the sends in flight long enough to count them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from notifyd.delivery.priority import floor
from tests.conftest import SmtpSink, base_config, eventually, load_config, running_daemon
from tests.integration.daemon_support import post

CONCURRENCY = 8
QUEUED = 60  # enough that delivery is still busy when the webhook is held
HELD = f"acc-{QUEUED + 1}"


async def test_a_waiting_webhook_keeps_delivery_at_its_floor_and_delivery_still_sends(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    smtp_sink.data_delay = 0.4
    config = base_config(tmp_path, database_url, smtp_sink.port)
    config["delivery"]["concurrency"] = CONCURRENCY
    await db.executemany(
        "INSERT INTO subscribers (account_id, email) VALUES ($1, $2)",
        [(f"acc-{n}", f"user{n}@client.example") for n in range(1, QUEUED + 2)],
    )
    low = floor(CONCURRENCY)
    assert 0 < low < CONCURRENCY
    async with running_daemon(load_config(tmp_path, config)) as running:
        dispatcher, intake = running.daemon.dispatcher, running.daemon.intake
        assert dispatcher is not None
        assert intake is not None
        for n in range(1, QUEUED + 1):
            await post(running, "call.missed", f"acc-{n}")

        async def full() -> bool:
            return dispatcher.in_flight == CONCURRENCY

        # No webhook waiting: every slot is delivery's.
        await eventually(full, "every delivery slot busy with no webhook waiting")

        async with db.transaction():
            await db.execute("SELECT 1 FROM subscribers WHERE account_id = $1 FOR UPDATE", HELD)
            held = asyncio.create_task(post(running, "call.missed", HELD))

            async def waiting() -> bool:
                return intake.waiting > 0

            await eventually(waiting, "the webhook waiting for its commit")
            sent = len(smtp_sink.messages)
            # The sends started before stay; once they end, no more than the floor at once.
            seen: list[int] = []
            async with asyncio.timeout(30):
                while len(smtp_sink.messages) < sent + CONCURRENCY + 2 * low:
                    if seen or dispatcher.in_flight <= low:
                        seen.append(dispatcher.in_flight)
                    await asyncio.sleep(0.01)
            assert not held.done()  # the webhook was waiting all along
            assert seen, "in flight never came down to the floor"
            assert max(seen) <= low, f"{max(seen)} in flight with a webhook waiting"
            # ... and delivery went on within its floor: sends started and ended meanwhile.
            assert len(smtp_sink.messages) >= sent + CONCURRENCY + 2 * low

        # The webhook committed: delivery has its slots back.
        assert "event_id" in await asyncio.wait_for(held, timeout=30)
        await eventually(full, "every delivery slot busy again")
