"""What a webhook costs notifyd's process, alone, in two trees alternated: CPU microseconds
per webhook (the daemon's process time from /proc, so other processes on the machine do
not count) while 32 clients post bench/ingest.py's mix, one daemon per tree and round on
the same throwaway PostgreSQL, before/after/before/after. For the intake's floor (issue 22,
docs/performance.md): rates here are not measured, only cost.

    .venv/bin/python bench/webhook_cost.py [--requests 4000] [--rounds 3] [--floor]
                                           TREE [TREE ...]

Each TREE is a checkout of notifyd (put first on the daemon's PYTHONPATH); `.` is this one.
With --floor, each tree's bench/floor_server.py instead of the daemon (notifyd's app, no
database: the floor a webhook costs before its commit) and, in each round, the bare
parse-only server (a) of bench/ingest.py, the target's unit (notifyd <= 3x (a)).
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
    HERE,
    SOURCES,
    CpuWatch,
    Postgres,
    Sink,
    add_subscribers,
    machine,
    notifyd_config,
    signed_requests,
    start_daemon,
    start_listening,
    stop_daemon,
    stop_process,
    throwaway_postgres,
    write_requests,
)
from ingest import ACCOUNTS, QUIET, commits, post

CLIENTS = 32
PARSE_ONLY = "(a) parse only"


async def floor(tree: str, count: int, folder: Path, run: int) -> float:
    """CPU per webhook, in microseconds, of `tree`'s floor server, or of the bare parse-only
    server (a) when `tree` is PARSE_ONLY: the same webhooks, no database behind either."""
    requests = write_requests(
        folder / f"floor-{run}.jsonl", signed_requests(count, ACCOUNTS, seed=run)
    )
    if tree == PARSE_ONLY:
        process, port = await start_listening(str(HERE / "baseline_server.py"), "parse")
    else:
        os.environ["PYTHONPATH"] = str(Path(tree).resolve())
        process, port = await start_listening(str(HERE / "floor_server.py"))
    try:
        warm = write_requests(
            folder / f"warm-{run}.jsonl", signed_requests(count // 10, ACCOUNTS, seed=-run - 1)
        )
        await post(port, warm, CLIENTS)
        watch = CpuWatch(lambda: [process.pid])
        await post(port, requests, CLIENTS)
        return watch.seconds() / count * 1e6
    finally:
        await stop_process(process)


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
        before = await commits(port)
        watch = CpuWatch(lambda: [process.pid])
        await post(port, requests, CLIENTS)
        cost = watch.seconds() / count * 1e6
        after = await commits(port)
        # The CPU a webhook costs falls as more share a commit: said beside it.
        shared = (after[0] - before[0]) / max(after[1] - before[1], 1)
        print(f"{tree}: {shared:.1f} webhooks a commit", file=sys.stderr)
        return cost
    finally:
        await stop_daemon(process)


async def floors(trees: list[str], count: int, rounds: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {tree: [] for tree in [*trees, PARSE_ONLY]}
    with tempfile.TemporaryDirectory(prefix="ntfy-floor-") as folder:
        run = 0
        for _ in range(rounds):
            for tree in figures:
                run += 1
                figures[tree].append(await floor(tree, count, Path(folder), run))
                print(f"{tree}: {figures[tree][-1]:.0f} us", file=sys.stderr)
    return figures


async def daemons(trees: list[str], count: int, rounds: int) -> dict[str, list[float]]:
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
    return figures


async def main(trees: list[str], count: int, rounds: int, at_floor: bool) -> None:
    figures = await (floors if at_floor else daemons)(trees, count, rounds)
    what = "floor server (no database)" if at_floor else "notifyd"
    print(f"{what} CPU per webhook, {count:,} webhooks at {CLIENTS} clients; {machine()}")
    for tree, values in figures.items():
        listed = " / ".join(f"{v:.0f}" for v in values)
        print(f"{tree}: {listed} us (median {statistics.median(values):.0f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--floor", action="store_true", help="no database: the floor servers")
    args = parser.parse_args()
    asyncio.run(main(args.trees, args.requests, args.rounds, args.floor))
