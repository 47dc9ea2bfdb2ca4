"""End to end: at a steady rate (`make bench`: half the measured ingest maximum, and a
rate delivery keeps up with), the time from notifyd's 202 to the SMTP sink's 250 for
immediate notices (a missed call, one per subscriber), p50/p99. The load generator (open
loop) and the sink are their own processes and write the times they saw; both clocks are
this machine's wall clock.

Baseline, same run, same sink: aiosmtplib sending a prebuilt message of the same size over
one reused connection, one at a time: the SMTP transaction any daemon pays.

    .venv/bin/python bench/e2e_latency.py [--rates 100,300] [--seconds 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # bench/ is not a package: run as a script
    HERE,
    SOURCES,
    CpuWatch,
    Postgres,
    Row,
    Sink,
    add_subscribers,
    machine,
    notifyd_config,
    percentile,
    postgres_pids,
    run_json,
    signed_requests,
    start_daemon,
    stop_daemon,
    table,
    throwaway_postgres,
    write_requests,
)

from notifyd.mail.previews import sample_view
from notifyd.mail.rendering import Renderer

CLIENTS = 32


def read_times(path: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, at = line.split()
        times.setdefault(key, float(at))
    return times


@dataclass
class Mixed:
    """One run of webhooks posted at a rate while their emails are sent: the load
    generator's figures for the 202s, each email's time from its 202 to the sink's 250,
    the sink's rate, and the CPU notifyd's process and PostgreSQL spent per webhook (its
    email included)."""

    webhooks: dict[str, Any]
    latencies: list[float]
    msg_per_s: float
    cpu_us: float
    pg_us: float


async def mixed_run(
    pg: Postgres, folder: Path, rate: float, seconds: float, run: int, extra: str = ""
) -> Mixed:
    """Missed calls (one per subscriber, each an immediate email) posted by 32 clients at
    `rate` a second for `seconds`, their emails sent meanwhile; `extra`: more config."""
    count = max(int(rate * seconds), 20)
    arrivals = folder / f"arrivals-{run}.txt"
    sink = await Sink.start(report_every=20, arrivals=arrivals)
    try:
        dsn = await pg.fresh_database()
        await add_subscribers(dsn, count)
        config = notifyd_config(folder, f"e2e-{run}", dsn, sink.port, SOURCES + extra)
        requests = signed_requests(count, count, seed=run, kinds=("call.missed",))
        recipient = {
            r["headers"]["webhook-id"]: f"user{n % count + 1}@client.example"
            for n, r in enumerate(requests)
        }
        path = write_requests(folder / f"e2e-{run}.jsonl", requests)
        answers = folder / f"answers-{run}.txt"
        process, port = await start_daemon(config)
        try:
            server, database = CpuWatch(lambda: [process.pid]), CpuWatch(lambda: postgres_pids(pg))
            result = await run_json(
                str(HERE / "loadgen.py"),
                *("--base", f"http://127.0.0.1:{port}", "--requests", str(path)),
                *("--clients", str(CLIENTS), "--rate", str(rate), "--answers", str(answers)),
                *("--cpu-pid", str(process.pid)),
            )
            assert set(result["statuses"]) == {"202"}, result["statuses"]
            answered = read_times(answers)
            async with asyncio.timeout(120):
                await sink.wait_for(count)  # the warm-up requests too
            cpu, pg_cpu = server.seconds(), database.seconds()
        finally:
            await stop_daemon(process)
    finally:
        await sink.stop()
    arrived = read_times(arrivals)
    latencies = [
        arrived[recipient[i]] - at for i, at in answered.items() if recipient[i] in arrived
    ]
    span = max(arrived.values()) - min(arrived.values())
    return Mixed(
        result,
        latencies,
        len(arrived) / span if span else 0.0,
        cpu / count * 1e6,
        pg_cpu / count * 1e6,
    )


async def notifyd_latencies(
    pg: Postgres, folder: Path, rate: float, seconds: float, run: int
) -> list[float]:
    return (await mixed_run(pg, folder, rate, seconds, run)).latencies


async def baseline_latencies(count: int) -> list[float]:
    sink = await Sink.start()
    renderer = Renderer("Bench <bench@voip.example>")
    message = renderer.mail(sample_view("call.missed", "ro"), datetime.now(UTC))
    latencies = []
    try:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, start_tls=False)
        await client.connect()
        try:
            for n in range(count):
                started = time.perf_counter()
                await client.sendmail("bench@voip.example", [f"base{n}@client.example"], message)
                latencies.append(time.perf_counter() - started)
        finally:
            await client.quit()
    finally:
        await sink.stop()
    return latencies


async def measure(pg: Postgres, rates: list[float], seconds: float, runs: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ntfy-e2e-") as folder:
        for rate in rates:
            ours: list[list[float]] = []
            raw: list[list[float]] = []
            for run in range(runs):
                ours.append(await notifyd_latencies(pg, Path(folder), rate, seconds, run))
                raw.append(await baseline_latencies(min(len(ours[-1]), 1000)))
            for q, label in ((0.5, "p50"), (0.99, "p99")):
                rows.append(
                    Row(
                        f"end to end at {rate:,.0f} webhooks/s, {label}",
                        "ms",
                        [percentile(r, q) * 1000 for r in ours],
                        [percentile(r, q) * 1000 for r in raw],
                        "one aiosmtplib send",
                        digits=1,
                    )
                )
    return rows


async def main(rates: list[float], seconds: float, runs: int) -> None:
    async with throwaway_postgres() as pg:
        rows = await measure(pg, rates, seconds, runs)
    print(f"webhook 202 -> SMTP 250, {seconds:.0f} s per rate, {runs} runs; {machine()}")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,300", help="webhooks/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main([float(r) for r in args.rates.split(",")], args.seconds, args.runs))
