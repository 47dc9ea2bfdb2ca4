"""The load generator, in its own process so that its CPU is not the server's: posts the
prepared requests of a file (JSON lines: path, headers, body) with `--clients` concurrent
connections, as fast as they are answered (closed loop) or at `--rate` a second (open loop,
each request at its scheduled time, so a slow server shows as latency, not as less load).

Prints one JSON line: count, seconds, rps, p50_ms, p99_ms, statuses, and with `--answers`
writes "<webhook-id> <unix time of the answer>" lines for end-to-end latency.

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


async def run(
    base: str, requests: list[dict[str, Any]], clients: int, rate: float, warmup: int
) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    latencies: list[float] = []
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
            sent = time.perf_counter()
            async with session.post(base + path, data=body, headers=headers) as response:
                await response.read()
                answered = time.perf_counter()
                status = response.status
            if n >= warmup:
                latencies.append(answered - sent)
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
    return summary, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--answers", type=Path)
    args = parser.parse_args()
    with args.requests.open(encoding="utf-8") as lines:
        requests = [json.loads(line) for line in lines]
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.install()
    except ImportError:
        pass
    summary, answers = asyncio.run(
        run(args.base, requests, args.clients, args.rate, min(args.warmup, len(requests) // 10))
    )
    if args.answers:
        args.answers.write_text("".join(f"{i} {t:.6f}\n" for i, t in answers), encoding="utf-8")
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
