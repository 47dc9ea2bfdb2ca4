"""Backlog: notices queued while the SMTP relay was down (here: no daemon, no sink), then
the sink and notifyd start. Peak RSS of the notifyd process while it drains, and the time
to drain, at two backlog sizes: the memory must not follow the backlog's size.

The "baseline" of the RSS rows is the same daemon draining a backlog of 1,000 notices (of
100 in the smoke run, whose backlogs are smaller than 1,000).

    .venv/bin/python bench/backlog.py [--sizes 20000,200000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from delivery import queue_notices
from harness import (  # bench/ is not a package: run as a script
    Postgres,
    Row,
    Sink,
    machine,
    notifyd_config,
    rss_mib,
    start_daemon,
    stop_daemon,
    table,
    throwaway_postgres,
)

SMALL = 1000


async def drain(pg: Postgres, folder: Path, size: int) -> tuple[float, float]:
    """(peak RSS in MiB, seconds to drain) for a backlog of `size` notices."""
    dsn = await pg.fresh_database()
    await queue_notices(dsn, size, with_audio=False)
    sink = await Sink.start(report_every=500)
    try:
        config = notifyd_config(folder, f"backlog-{size}", dsn, sink.port)
        process, _port = await start_daemon(config)
        started = time.time()
        peak = rss_mib(process.pid)
        try:
            async with asyncio.timeout(1800):
                while sink.count < size:
                    peak = max(peak, rss_mib(process.pid))
                    await asyncio.sleep(0.25)
            finished = sink.last_at
        finally:
            await stop_daemon(process)
    finally:
        await sink.stop()
    return peak, finished - started


async def measure(pg: Postgres, sizes: list[int], small: int = SMALL) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="ntfy-backlog-") as folder:
        small_rss, _ = await drain(pg, Path(folder), small)
        rows = []
        for size in sizes:
            rss, seconds = await drain(pg, Path(folder), size)
            rows.append(
                Row(
                    f"backlog of {size:,}: peak RSS",
                    "MiB",
                    [rss],
                    [small_rss],
                    f"backlog of {small:,}",
                )
            )
            rows.append(Row(f"backlog of {size:,}: time to drain", "s", [seconds], []))
            rows.append(Row(f"backlog of {size:,}: drain rate", "msg/s", [size / seconds], []))
    return rows


async def main(sizes: list[int]) -> None:
    async with throwaway_postgres() as pg:
        rows = await measure(pg, sizes)
    print(f"backlog drained by one notifyd process; {machine()}")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000")
    args = parser.parse_args()
    asyncio.run(main([int(s) for s in args.sizes.split(",")]))
