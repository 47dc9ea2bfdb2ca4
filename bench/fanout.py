"""Fan-out: a service broadcast to N subscribers (a million in the issue's size), queued in
batches in the background by one notifyd process: subscribers queued per second, and the
webhook p99 while it runs against the p99 of the same load at rest.

Raw baseline for the rate: one `INSERT INTO notices ... SELECT FROM subscribers` of the same
rows in the same database, the fastest PostgreSQL can queue them. Delivery goes to a sink
that takes 5 s per message, so that the fan-out, not SMTP, is measured.

    .venv/bin/python bench/fanout.py [--subscribers 1000000] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # bench/ is not a package: run as a script
    HERE,
    SOURCES,
    Postgres,
    Row,
    Sink,
    add_subscribers,
    machine,
    notifyd_config,
    run_json,
    signed_requests,
    start_daemon,
    stop_daemon,
    table,
    throwaway_postgres,
    write_requests,
)

from notifyd.catalogue.samples import SAMPLE_BROADCASTS

TOKEN = secrets.token_urlsafe(16)  # a throwaway admin token for this run
ADMIN = f'[admin.tokens]\nbench = "sha256:{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
WEBHOOKS_PER_SECOND = 50
# Seconds of webhooks at rest (twice) and, at least, during the fan-out.
LOAD_SECONDS = 5


async def webhooks(port: int, path: Path) -> dict[str, Any]:
    return await run_json(
        str(HERE / "loadgen.py"),
        *("--base", f"http://127.0.0.1:{port}", "--requests", str(path)),
        *("--clients", "8", "--rate", str(WEBHOOKS_PER_SECOND), "--warmup", "25"),
        limit_seconds=1800,
    )


async def raw_rate(dsn: str, count: int) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        event = await conn.fetchval("SELECT event_id FROM broadcasts LIMIT 1")
        started = time.perf_counter()
        await conn.execute(
            """INSERT INTO notices (id, event_id, account_id, kind, category, recipient,
                                    language, timezone, message_id, dedupe_key, reasons)
               SELECT gen_random_uuid(), $1, account_id, 'notice.service', 'service', email,
                      'ro', 'Europe/Bucharest', '<' || gen_random_uuid() || '@voip.example>',
                      'raw:' || account_id, '["raw"]'::jsonb
               FROM subscribers""",
            event,
        )
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()


async def one_run(
    pg: Postgres, folder: Path, count: int, run: int, load_seconds: int
) -> tuple[float, ...]:
    """(subscribers/s, webhook p99 during, p99 at rest, raw INSERT rate)."""
    dsn = await pg.fresh_database()
    await add_subscribers(dsn, count)
    sink = await Sink.start(delay=5.0)
    config = notifyd_config(folder, f"fanout-{run}", dsn, sink.port, SOURCES + ADMIN)
    process, port = await start_daemon(config)
    try:
        at_rest = write_requests(
            folder / "rest.jsonl", signed_requests(WEBHOOKS_PER_SECOND * load_seconds, 1000, seed=1)
        )
        # Twice: the first warms a fresh daemon (its pool opens connections on demand).
        await webhooks(port, at_rest)
        rest = await webhooks(
            port,
            write_requests(
                folder / "rest2.jsonl",
                signed_requests(WEBHOOKS_PER_SECOND * load_seconds, 1000, seed=3),
            ),
        )
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {"kind": "notice.service", **SAMPLE_BROADCASTS["notice.service"]}
        during_file = write_requests(
            folder / "during.jsonl",
            # About as long as the fan-out takes at 8,000 subscribers a second.
            signed_requests(WEBHOOKS_PER_SECOND * max(count // 8000, load_seconds), 1000, seed=2),
        )
        async with aiohttp.ClientSession(headers=headers) as session:
            started = time.perf_counter()
            async with session.post(f"http://127.0.0.1:{port}/v1/admin/broadcasts", json=body) as r:
                assert r.status == 202, await r.text()
                broadcast = (await r.json())["id"]
            load = asyncio.create_task(webhooks(port, during_file))
            async with asyncio.timeout(1800):
                while True:
                    url = f"http://127.0.0.1:{port}/v1/admin/broadcasts/{broadcast}"
                    async with session.get(url) as r:
                        progress = await r.json()
                    if progress["state"] == "done":
                        break
                    await asyncio.sleep(0.2)
            seconds = time.perf_counter() - started
            during = await load
    finally:
        # The sink first: it takes 5 s a message, and the daemon would wait that long for
        # the sends in progress before it stops (they are retried; nothing is measured now).
        await sink.stop()
        await stop_daemon(process)
    return count / seconds, during["p99_ms"], rest["p99_ms"], await raw_rate(dsn, count)


async def measure(
    pg: Postgres, count: int, runs: int, load_seconds: int = LOAD_SECONDS
) -> list[Row]:
    results = []
    with tempfile.TemporaryDirectory(prefix="ntfy-fanout-") as folder:
        for run in range(runs):
            results.append(await one_run(pg, Path(folder), count, run, load_seconds))
    return [
        Row(
            f"fan-out to {count:,}",
            "subscribers/s",
            [r[0] for r in results],
            [r[3] for r in results],
            "one INSERT ... SELECT",
        ),
        Row(
            f"webhook p99 during the fan-out ({WEBHOOKS_PER_SECOND}/s)",
            "ms",
            [r[1] for r in results],
            [r[2] for r in results],
            "same load at rest",
            digits=1,
        ),
    ]


async def main(count: int, runs: int) -> None:
    async with throwaway_postgres() as pg:
        rows = await measure(pg, count, runs)
    print(f"broadcast fan-out to {count:,} subscribers, {runs} runs; {machine()}")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.subscribers, args.runs))
