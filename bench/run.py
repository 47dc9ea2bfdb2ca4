"""`make bench`: every benchmark against its raw baseline in the same run, on one throwaway
(durable) PostgreSQL and aiosmtpd sinks on loopback, printed as one Markdown table of
medians [min-max] and ratios (pasted into docs/performance.md).

The default sizes keep the whole run under 10 minutes on 2 cores; `--full` uses the
issue's sizes (20,000 notices, a backlog of 200,000, a fan-out to 1,000,000: about 25
minutes at today's rates); `--smoke` runs everything tiny (the test suite does).

    .venv/bin/python bench/run.py [--full | --smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import backlog
import delivery
import e2e_latency
import fanout
import ingest
import intake_cost
import mixed_load
from harness import Row, Sink, machine, table, throwaway_postgres

# Module constants named here: inside Sizes, `backlog` and `fanout` are fields.
BACKLOG_SMALL = backlog.SMALL
FANOUT_LOAD_SECONDS = fanout.LOAD_SECONDS


@dataclass(frozen=True)
class Sizes:
    runs: int
    requests: int  # per client count and target, ingest
    intake: int  # webhooks, the intake's cost alone
    notices: int  # delivery, plain
    audio_notices: int  # delivery with a 200 KB attachment on a tenth
    e2e_seconds: float
    backlog: tuple[int, ...]
    fanout: int
    fanout_runs: int
    backlog_small: int = BACKLOG_SMALL  # the RSS rows' baseline backlog
    fanout_load_seconds: int = FANOUT_LOAD_SECONDS  # webhooks at rest, and during


SIZES = {
    "default": Sizes(3, 6000, 4200, 5000, 2000, 10, (10_000, 40_000), 100_000, 3),
    "full": Sizes(3, 20000, 4200, 20000, 20000, 20, (20_000, 200_000), 1_000_000, 1),
    # Only that each benchmark runs and prints its figures: what waits on the clock is short.
    "smoke": Sizes(1, 300, 140, 40, 20, 1, (200, 400), 300, 1, 100, 1),
}


async def main(name: str) -> None:
    sizes = SIZES[name]
    started = time.monotonic()
    rows: list[Row] = []
    async with throwaway_postgres() as pg:
        sink = await Sink.start()
        try:
            ingest_rows = await ingest.measure(pg, sink, sizes.requests, sizes.runs)
        finally:
            await sink.stop()
        rows += ingest_rows
        rows += await intake_cost.measure(pg, sizes.intake, intake_cost.BATCH)
        half = ingest.max_rate(ingest_rows) / 2
        rows += await delivery.measure(pg, sizes.notices, sizes.audio_notices, sizes.runs)
        rows += await delivery.measure_dkim(pg, sizes.notices, sizes.runs)
        # Also at a rate one process delivers with room to spare: latency without a queue.
        steady = min(100.0, half / 2)
        rows += await e2e_latency.measure(pg, [half, steady], sizes.e2e_seconds, sizes.runs)
        # Webhooks while their emails are sent at the same half load: what the 202 does then.
        rows += await mixed_load.measure(pg, half, sizes.e2e_seconds, sizes.runs)
        rows += await backlog.measure(pg, list(sizes.backlog), sizes.backlog_small)
        rows += await fanout.measure(pg, sizes.fanout, sizes.fanout_runs, sizes.fanout_load_seconds)
    minutes = (time.monotonic() - started) / 60
    print(f"\nnotifyd benchmarks ({name} sizes), {machine()}, {minutes:.1f} minutes")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true")
    group.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    asyncio.run(main("full" if args.full else "smoke" if args.smoke else "default"))
