"""Ingest: signed, valid webhooks of a realistic mix (0.4-2 KB) posted by 32 and 128
concurrent clients to one notifyd process, against two bare aiohttp servers measured in the
same run on the same PostgreSQL: (a) parse the JSON and answer 202, storing nothing;
(b) one committed INSERT per request through an asyncpg pool. The load generator is its
own process (bench/loadgen.py).

    .venv/bin/python bench/ingest.py [--requests 8000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

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
    postgres_pids,
    run_json,
    signed_requests,
    start_daemon,
    start_listening,
    stop_daemon,
    stop_process,
    table,
    throwaway_postgres,
    write_requests,
)

CLIENTS = (32, 128)
ACCOUNTS = 2000
# Every subscriber's quiet hours cover the whole day: the notices are queued (that is the
# ingest's work), but delivery, measured on its own, does not compete for the CPU.
QUIET = '[defaults]\nquiet_hours = "00:00-23:59"\n'


async def post(port: int, requests: Path, clients: int, rate: float = 0.0) -> dict[str, Any]:
    args = [str(HERE / "loadgen.py"), "--base", f"http://127.0.0.1:{port}"]
    args += ["--requests", str(requests), "--clients", str(clients)]
    if rate:
        args += ["--rate", str(rate)]
    result = await run_json(*args)
    bad = {k: v for k, v in result["statuses"].items() if k not in ("200", "202")}
    if bad:
        raise RuntimeError(f"unexpected answers: {bad}")
    return result


async def commits(port: int) -> tuple[float, float]:
    """(webhooks committed, shared commits) so far, from the daemon's metrics."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    found = dict(re.findall(r"^notifyd_ingest_batch_size_(sum|count) (\S+)$", text, re.M))
    return float(found.get("sum", 0)), float(found.get("count", 0))


async def costed(
    pg: Postgres, pid: int, posting: Awaitable[dict[str, Any]], count: int
) -> dict[str, Any]:
    """The load generator's result, plus the CPU per request of the server (`pid`) and of
    PostgreSQL while it ran, in microseconds."""
    server, database = CpuWatch(lambda: [pid]), CpuWatch(lambda: postgres_pids(pg))
    result = await posting
    result["cpu_us"] = server.seconds() / count * 1e6
    result["pg_us"] = database.seconds() / count * 1e6
    return result


async def one_run(pg: Postgres, sink: Sink, count: int, run: int, folder: Path) -> dict[str, Any]:
    """{target: {clients: loadgen result}} for notifyd and both baselines."""
    results: dict[str, dict[int, dict[str, Any]]] = {}
    dsn = await pg.fresh_database()
    await add_subscribers(dsn, ACCOUNTS)
    config = notifyd_config(folder, f"ingest-{run}", dsn, sink.port, SOURCES)
    config.write_text(config.read_text().replace('[defaults]\nquiet_hours = ""\n', QUIET))
    process, port = await start_daemon(config)
    try:
        for clients in CLIENTS:
            requests = signed_requests(count, ACCOUNTS, seed=run * 1000 + clients)
            path = write_requests(folder / f"ingest-{run}-{clients}.jsonl", requests)
            before = await commits(port)
            result = await costed(pg, process.pid, post(port, path, clients), count)
            after = await commits(port)
            result["per_commit"] = (after[0] - before[0]) / max(after[1] - before[1], 1)
            results.setdefault("notifyd", {})[clients] = result
    finally:
        await stop_daemon(process)
    for mode in ("parse", "insert"):
        server, port = await start_listening(str(HERE / "baseline_server.py"), mode, "--dsn", dsn)
        try:
            for clients in CLIENTS:
                path = folder / f"ingest-{run}-{clients}.jsonl"
                results.setdefault(mode, {})[clients] = await costed(
                    pg, server.pid, post(port, path, clients), count
                )
        finally:
            await stop_process(server)
    return results


async def measure(pg: Postgres, sink: Sink, count: int, runs: int) -> list[Row]:
    runs_results = []
    with tempfile.TemporaryDirectory(prefix="ntfy-ingest-") as folder:
        for run in range(runs):
            runs_results.append(await one_run(pg, sink, count, run, Path(folder)))

    def figures(target: str, clients: int, key: str) -> list[float]:
        return [r[target][clients][key] for r in runs_results]

    rows = []
    for clients in CLIENTS:
        ours = figures("notifyd", clients, "rps")
        rows.append(
            Row(
                f"ingest, {clients} clients",
                "req/s",
                ours,
                figures("parse", clients, "rps"),
                "(a) aiohttp, parse only",
            )
        )
        rows.append(
            Row(
                f"ingest, {clients} clients",
                "req/s",
                ours,
                figures("insert", clients, "rps"),
                "(b) aiohttp + INSERT/commit",
            )
        )
        rows.append(
            Row(
                f"ingest, {clients} clients, webhooks per commit",
                "mean",
                figures("notifyd", clients, "per_commit"),
                [1.0] * len(runs_results),
                "(b) one per commit",
                digits=1,
            )
        )
        if clients == CLIENTS[0]:  # about the same at any client count: shown once
            rows += cost_rows(clients, figures)
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            rows.append(
                Row(
                    f"ingest, {clients} clients, {label}",
                    "ms",
                    figures("notifyd", clients, key),
                    figures("insert", clients, key),
                    "(b) aiohttp + INSERT/commit",
                    digits=1,
                )
            )
    return rows


def cost_rows(clients: int, figures: Callable[[str, int, str], list[float]]) -> list[Row]:
    """What a request costs in CPU, a figure the rest of a shared machine moves less than
    it moves a rate: notifyd's process against each baseline server's, and PostgreSQL's."""
    b = "(b) aiohttp + INSERT/commit"
    return [
        Row(
            f"ingest, {clients} clients, {what} CPU per request",
            "us",
            figures("notifyd", clients, key),
            figures(mode, clients, key),
            name,
        )
        for what, key, mode, name in (
            ("server", "cpu_us", "parse", "(a) aiohttp, parse only"),
            ("server", "cpu_us", "insert", b),
            ("PostgreSQL", "pg_us", "insert", b),
        )
    ]


def max_rate(rows: list[Row]) -> float:
    """The median ingest maximum at 32 clients (for the end-to-end benchmark's half load)."""
    return statistics.median(rows[0].ours)


async def main(count: int, runs: int) -> None:
    async with throwaway_postgres() as pg:
        sink = await Sink.start()
        try:
            rows = await measure(pg, sink, count, runs)
        finally:
            await sink.stop()
    print(f"ingest of {count:,} webhooks per client count, {runs} runs; {machine()}")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.runs))
