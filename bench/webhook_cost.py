"""What a webhook costs notifyd's process, alone, in two trees alternated: CPU microseconds
per webhook (the daemon's process time from /proc, so other processes on the machine do
not count) while 32 clients post bench/ingest.py's mix, one daemon per tree and round on
the same throwaway PostgreSQL, before/after/before/after. For the intake's floor (issue 22,
docs/performance.md): rates here are not measured, only cost.

    .venv/bin/python bench/webhook_cost.py [--requests 4000] [--rounds 3] TREE [TREE ...]

Each TREE is a checkout of notifyd (put first on the daemon's PYTHONPATH); `.` is this one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # bench/ is not a package: run as a script
    SOURCES,
    CpuWatch,
    Postgres,
    Sink,
    add_subscribers,
    machine,
    notifyd_config,
    signed_requests,
    start_daemon,
    stop_daemon,
    throwaway_postgres,
    write_requests,
)
from ingest import ACCOUNTS, QUIET, post

CLIENTS = 32


async def one(pg: Postgres, sink: Sink, tree: str, count: int, folder: Path, run: int) -> float:
    """notifyd's CPU per webhook, in microseconds, for `count` webhooks posted to `tree`."""
    dsn = await pg.fresh_database()
    await add_subscribers(dsn, ACCOUNTS)
    config = notifyd_config(folder, f"cost-{run}", dsn, sink.port, SOURCES)
    config.write_text(config.read_text().replace('[defaults]\nquiet_hours = ""\n', QUIET))
    requests = write_requests(
        folder / f"cost-{run}.jsonl", signed_requests(count, ACCOUNTS, seed=run)
    )
    os.environ["PYTHONPATH"] = str(Path(tree).resolve())
    process, port = await start_daemon(config)
    try:
        # A first tenth warms the daemon (imports, pool, plans) and is not counted.
        warm = write_requests(
            folder / f"warm-{run}.jsonl", signed_requests(count // 10, ACCOUNTS, seed=-run - 1)
        )
        await post(port, warm, CLIENTS)
        watch = CpuWatch(lambda: [process.pid])
        await post(port, requests, CLIENTS)
        return watch.seconds() / count * 1e6
    finally:
        await stop_daemon(process)


async def main(trees: list[str], count: int, rounds: int) -> None:
    figures: dict[str, list[float]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory(prefix="ntfy-cost-") as folder:
        async with throwaway_postgres() as pg:
            sink = await Sink.start()
            try:
                run = 0
                for _ in range(rounds):
                    for tree in trees:
                        run += 1
                        cost = await one(pg, sink, tree, count, Path(folder), run)
                        figures[tree].append(cost)
                        print(f"{tree}: {cost:.0f} us", file=sys.stderr)
            finally:
                await sink.stop()
    print(f"notifyd CPU per webhook, {count:,} webhooks at {CLIENTS} clients; {machine()}")
    for tree, values in figures.items():
        listed = " / ".join(f"{v:.0f}" for v in values)
        print(f"{tree}: {listed} us (median {statistics.median(values):.0f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.trees, args.requests, args.rounds))
