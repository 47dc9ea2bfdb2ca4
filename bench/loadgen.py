"""The load generator, in its own process so that its CPU is not the server's: posts the
prepared requests of a file (JSON lines: path, headers, body) with `--clients` concurrent
connections, as fast as they are answered (closed loop) or at `--rate` a second (open loop,
each request at its scheduled time, so a slow server shows as latency, not as less load).

Prints one JSON line: count, seconds, rps, p50_ms, p99_ms, statuses, and with `--answers`
writes "<webhook-id> <unix time of the answer>" lines for end-to-end latency. With
`--cpu-pid`, also cpu_p50_ms and cpu_p99_ms: the CPU time that process's main thread (the
server's event loop) used between each request's sending and its answer, the loop's work
a request waited behind; unlike the wall time, hardly moved by what else the shared cores
run (Linux /proc/<pid>/schedstat, in nanoseconds).

    python bench/loadgen.py --base http://127.0.0.1:8080 --requests reqs.jsonl --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def loop_cpu(pid: int) -> float:
    """Seconds of CPU the main thread of `pid` has run so far; 0 without one."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as stat:
        return int(stat.read().split()[0]) / 1e9


async def run(
    base: str,
    requests: list[dict[str, Any]],
    clients: int,
    rate: float,
    warmup: int,
    cpu_pid: int = 0,
) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    latencies: list[float] = []
    cpu: list[float] = []
    statuses: Counter[int] = Counter()
    answers: list[tuple[str, float]] = []
    bodies = [(r["path"], r["headers"], r["body"].encode()) for r in requests]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(len(bodies)):
        queue.put_nowait(n)
    started = 0.0

    async def client(session: aiohttp.ClientSession) -> None:
        while True:
            try:
                n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            path, headers, body = bodies[n]
            if rate:
                delay = started + (n - warmup) / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent, cpu_sent = time.perf_counter(), loop_cpu(cpu_pid)
            async with session.post(base + path, data=body, headers=headers) as response:
                await response.read()
                answered, cpu_answered = time.perf_counter(), loop_cpu(cpu_pid)
                status = response.status
            if n >= warmup:
                latencies.append(answered - sent)
                cpu.append(cpu_answered - cpu_sent)
                statuses[status] += 1
                answers.append((headers.get("webhook-id", ""), time.time()))

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Warm-up requests open the connections and warm the server's caches, untimed.
        if warmup:
            first = [queue.get_nowait() for _ in range(min(warmup, queue.qsize()))]
            for n in first:
                path, headers, body = bodies[n]
                async with session.post(base + path, data=body, headers=headers) as response:
                    await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        seconds = time.perf_counter() - started
    count = len(latencies)
    summary = {
        "count": count,
        "seconds": seconds,
        "rps": count / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": {str(k): v for k, v in statuses.items()},
    }
    if cpu_pid:
        summary["cpu_p50_ms"] = percentile(cpu, 0.50) * 1000
        summary["cpu_p99_ms"] = percentile(cpu, 0.99) * 1000
    return summary, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--answers", type=Path)
    parser.add_argument("--cpu-pid", type=int, default=0)
    args = parser.parse_args()
    with args.requests.open(encoding="utf-8") as lines:
        requests = [json.loads(line) for line in lines]
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    summary, answers = asyncio.run(
        run(
            args.base,
            requests,
            args.clients,
            args.rate,
            min(args.warmup, len(requests) // 10),
            args.cpu_pid,
        )
    )
    if args.answers:
        args.answers.write_text("".join(f"{i} {t:.6f}\n" for i, t in answers), encoding="utf-8")
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
