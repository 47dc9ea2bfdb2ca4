"""Back-pressure and pacing (issue 5): a slow relay backs the work up into the queue, not
into the daemon's memory, and webhooks are still answered; a paced destination domain gets
its rate without holding up the others."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifyd import settings as settings_module
from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    PBX_SECRET,
    SmtpSink,
    running_daemon,
    signed_request,
    smtp_server,
    spawn_daemon,
    write_config,
)
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import broadcast

NOTICES = 2000
CONCURRENCY = 4


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_slow_relay_backs_up_into_the_queue_not_into_memory(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    await db.execute(
        """INSERT INTO subscribers (account_id, email)
           SELECT 'acc-' || g, 'user' || g || '@client.example'
           FROM generate_series(1, $1) AS g""",
        NOTICES,
    )
    smtp_sink.data_delay = 0.25  # 4 connections: at most 16 messages a second
    config: dict[str, Any] = admin_config(tmp_path, database_url, smtp_sink.port)
    config["delivery"].update(concurrency=CONCURRENCY, batch_size=50, poll_seconds=0.2)
    config["smtp"]["pool_size"] = CONCURRENCY
    daemon = await spawn_daemon(write_config(tmp_path / "notifyd.toml", config))
    try:
        await broadcast(daemon)
        async with asyncio.timeout(60):
            while await db.fetchval("SELECT count(*) FROM notices") < NOTICES:
                await asyncio.sleep(0.1)
        pid = daemon.process.pid
        first_rss = rss_kib(pid)
        rss: list[int] = []
        in_flight: list[int] = []
        answers: list[int] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for n in range(20):
                in_flight.append(
                    await db.fetchval("SELECT count(*) FROM notices WHERE state = 'sending'")
                )
                rss.append(rss_kib(pid))
                # A webhook while delivery is backed up: answered, and committed.
                event = sample_event("call.missed", f"acc-{n + 1}")
                body, headers = signed_request(event, PBX_SECRET)
                async with session.post(
                    f"{daemon.base_url}/v1/webhooks/pbx", data=body, headers=headers
                ) as response:
                    answers.append(response.status)
                await asyncio.sleep(0.2)
        queued_meanwhile = await db.fetchval("SELECT count(*) FROM notices WHERE state = 'queued'")

        # The relay is fast again: everything goes, once.
        smtp_sink.data_delay = 0
        async with asyncio.timeout(120):
            while await db.fetchval("SELECT count(*) FROM notices WHERE state <> 'sent'"):
                await asyncio.sleep(0.2)
    finally:
        daemon.process.terminate()
        await daemon.wait_exit()

    growth_mib = (max(rss) - first_rss) / 1024
    print(
        f"\nslow relay: {queued_meanwhile} queued, in flight at most {max(in_flight)}, "
        f"RSS {first_rss // 1024} MiB -> peak {max(rss) // 1024} MiB"
    )
    assert answers == [202] * 20
    assert queued_meanwhile > NOTICES // 2  # the backlog really was there, in the queue
    # Claims are bounded by the concurrency: the rest of the backlog is rows, not objects.
    # A webhook's commit claims what it queues due now on the free slots it was offered
    # (docs/delivery.md), which the worker may fill before the commit lands: with one
    # webhook posted at a time, one more than the concurrency.
    assert max(in_flight) <= CONCURRENCY + 1
    assert growth_mib < 30, rss
    recipients = [r for _, rs in smtp_sink.envelopes for r in rs]
    assert len(recipients) == len(set(recipients)) + 20  # 20 missed calls went to users 1-20
    assert await db.fetchval("SELECT count(*) FROM notices") == NOTICES + 20


class TimedSink(SmtpSink):
    """Records when each recipient's message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        now = time.monotonic()
        self.arrivals.extend((now, recipient) for recipient in envelope.rcpt_tos)
        return reply


async def test_a_paced_domain_gets_its_rate_and_the_others_are_not_held_up(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    busy = [f"user{n}@busy.example" for n in range(20)]
    other = [f"user{n}@other.example" for n in range(3)]
    await db.executemany(
        "INSERT INTO subscribers (account_id, email) VALUES ($1, $2)",
        [(f"acc-{n}", address) for n, address in enumerate(busy + other)],
    )
    async with smtp_server(TimedSink()) as sink:
        assert isinstance(sink, TimedSink)
        config = admin_config(tmp_path, database_url, sink.port)
        config["delivery"].update(concurrency=4, batch_size=50)
        path = write_config(tmp_path / "notifyd.toml", config)
        # A quoted key: a domain has dots, which TOML would read as nested tables.
        with path.open("a", encoding="utf-8") as toml:
            toml.write('\n[delivery.domain_rates]\n"busy.example" = 5\n')
        settings = settings_module.load(path, environ={})
        async with running_daemon(settings) as daemon:
            # The busy domain's notices first: they are at the head of the queue.
            for n, _ in enumerate(busy + other):
                event = sample_event("call.missed", f"acc-{n}")
                assert (await daemon.post("pbx", event, PBX_SECRET))[0] == 202
            async with asyncio.timeout(30):
                while len(sink.arrivals) < len(busy) + len(other):
                    await asyncio.sleep(0.05)

    to_busy = sorted(t for t, r in sink.arrivals if r in busy)
    to_other = sorted(t for t, r in sink.arrivals if r in other)
    gaps = [b - a for a, b in pairwise(to_busy)]
    # Five a second: twenty messages span at least 19 x 0.2 s (slack for the clock).
    assert to_busy[-1] - to_busy[0] >= 3.6, gaps
    assert min(gaps) >= 0.1, gaps
    # The other domain did not queue behind the paced one's twenty (four delivery slots
    # sleeping out the pace would have held it until the last few).
    assert to_other[-1] < to_busy[9]
