"""Soak: mixed webhooks for a long time, with the SMTP relay stopped and restarted midway and
PostgreSQL restarted once. Not a benchmark and not part of `make test`: `make soak` (an
hour) or a short run to try it.

What it checks, and exits 1 if any fails:
- every welcome email (one `account.created` per new account, posted like a PBX: retried
  with the same webhook-id on a 503 or a network error) arrives, once, bar the documented
  duplicates of a crash mid-transaction (at most the notices in flight when the relay or
  the database went away);
- the queue drains: nothing left queued, sending or deferred-by-retry at the end;
- notifyd's RSS and open file descriptors are flat: the last quarter's median is within
  20 % + 10 MiB (RSS) and 20 % + 10 + the SMTP pool (descriptors) of the first quarter's.
Mixed events of the benchmarks' PBX mix run beside the welcome emails, for churn.

    .venv/bin/python bench/soak.py --minutes 60 [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # bench/ is not a package: run as a script
    BILLING_SECRET,
    HERE,
    SOURCES,
    add_subscribers,
    notifyd_config,
    rss_mib,
    signed_requests,
    start_daemon,
    stop_daemon,
    throwaway_postgres,
)

ACCOUNTS = 500  # subscribers the mixed events go to
CLIENT_CONNECTIONS = 16
# SMTP connections are opened as the load needs them, up to [smtp] pool_size (32): the
# drain after the relay's outage may open all of them, and they stay for the next load.
SMTP_POOL = 32
# After the load: time for the queue to drain and every welcome email to arrive.
DRAIN_SECONDS = 900


class Relay:
    """bench/sink.py on one port for the whole run, so it can be stopped and started again."""

    def __init__(self, arrivals: Path) -> None:
        self.arrivals = arrivals
        self.port = 0
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        options = ["--arrivals", str(self.arrivals), "--append", "--port", str(self.port)]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "sink.py"), *options, stdout=asyncio.subprocess.PIPE
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=30)
        self.port = int(line.split()[1])
        self._drain = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for _ in self.process.stdout:
            pass

    async def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            await self.process.wait()
            self.process = None


def welcome(account: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    event = {
        "type": "account.created",
        "timestamp": now.isoformat(),
        "data": {
            "account_id": account,
            "email": f"{account}@soak.example",
            "username": account,
            "language": random.choice(["ro", "en"]),
        },
    }
    body = json.dumps(event)
    webhook_id = f"msg_{uuid.uuid4().hex}"
    return {
        "path": "/v1/webhooks/billing",
        "headers": {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(BILLING_SECRET).sign(webhook_id, now, body),
        },
        "body": body,
    }


async def post(session: aiohttp.ClientSession, port: int, request: dict[str, Any]) -> int:
    """As a PBX posts: the same webhook-id again after a 503 or a network error, until it
    gets an answer that is not; the number of tries."""
    tries = 0
    while True:
        tries += 1
        try:
            async with session.post(
                f"http://127.0.0.1:{port}{request['path']}",
                data=request["body"],
                headers=request["headers"],
            ) as response:
                if response.status != 503:
                    if response.status >= 300:
                        raise RuntimeError(f"{response.status}: {await response.text()}")
                    return tries
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(1.0)


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def flat(samples: list[float], slack: float) -> tuple[float, float, bool]:
    quarter = max(1, len(samples) // 4)
    first, last = statistics.median(samples[:quarter]), statistics.median(samples[-quarter:])
    return first, last, last <= first * 1.2 + slack


@dataclass
class Drained:
    got: Counter[str]
    # Welcome emails that never arrived (empty when the queue drained).
    missing: set[str]


def arrived(arrivals: Path) -> Counter[str]:
    return Counter(
        line.split()[0]
        for line in arrivals.read_text().splitlines()
        if line.endswith(tuple("0123456789")) and "@soak.example" in line
    )


async def drain(
    conn: asyncpg.Connection, arrivals: Path, wanted: set[str], events: list[str], started: float
) -> Drained:
    """Wait (up to DRAIN_SECONDS) for every welcome email and an empty queue, saying every
    minute how far it got: a slow drain is told apart from a stuck notice."""
    deadline = time.monotonic() + DRAIN_SECONDS
    next_note = 0.0
    while True:
        got = arrived(arrivals)
        left = await conn.fetchval(
            "SELECT count(*) FROM notices WHERE state IN ('queued', 'sending')"
            " AND due_at < now() + interval '1 minute'"
        )
        missing = wanted - set(got)
        if not missing and left == 0:
            return Drained(got, set())
        now = time.monotonic()
        if now >= next_note:
            note = f"{now - started:.0f} s: draining, {len(missing)} welcome emails to come"
            events.append(f"{note}, {left} notices due")
            print(events[-1], flush=True)
            next_note = now + 60
        if now >= deadline:
            return Drained(got, missing)
        await asyncio.sleep(2)


async def explain_missing(conn: asyncpg.Connection, missing: set[str]) -> None:
    """What became of the welcome emails that never arrived: their notices' states."""
    rows = await conn.fetch(
        "SELECT n.state, n.attempts, n.last_error, count(*) AS notices"
        " FROM notices n JOIN events e ON e.id = n.event_id"
        " WHERE e.type = 'account.created' AND n.recipient = ANY($1::text[])"
        " GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 20",
        sorted(missing),
    )
    print(f"soak: {len(missing)} welcome emails never arrived, e.g. {sorted(missing)[:5]}")
    for row in rows:
        print(
            f"  {row['notices']} notices: {row['state']}, {row['attempts']} attempts,"
            f" last error {str(row['last_error'])[:160]!r}"
        )
    accepted = await conn.fetchval(
        "SELECT count(*) FROM notices n JOIN events e ON e.id = n.event_id"
        " WHERE e.type = 'account.created' AND n.recipient = ANY($1::text[])",
        sorted(missing),
    )
    print(f"  {len(missing) - accepted} of them have no notice at all")


async def soak(minutes: float, rate: float, folder: Path) -> bool:
    seconds = minutes * 60
    async with throwaway_postgres() as pg:
        dsn = await pg.fresh_database()
        await add_subscribers(dsn, ACCOUNTS)
        arrivals = folder / "arrivals.txt"
        relay = Relay(arrivals)
        await relay.start()
        # Retries a few seconds apart, so that the run drains soon after the relay is back.
        extra = "[delivery]\nretry_initial_seconds = 2\nretry_max_seconds = 10\n"
        config = notifyd_config(folder, "soak", dsn, relay.port, SOURCES + extra)
        process, port = await start_daemon(config)
        pid = process.pid
        welcomed: list[str] = []
        tries = Counter[int]()
        rss: list[float] = []
        fds: list[float] = []
        events: list[str] = []
        started = time.monotonic()
        pending: set[asyncio.Task[int]] = set()
        refused: list[str] = []
        restart: asyncio.Task[None] | None = None

        async def restart_postgres(at: float) -> None:
            await pg.server.stop()
            await asyncio.sleep(5)
            await pg.server.start()
            events.append(f"{at:.0f} s: postgresql stopped (fast) for 5 s, then started")

        def count_tries(task: asyncio.Task[int]) -> None:
            if task.exception() is not None:
                refused.append(str(task.exception()))
            else:
                tries.update([task.result()])

        try:
            # A PBX posts over a bounded number of connections: without a bound, the retries
            # during an outage open a hundred, and the server's descriptors follow them.
            async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=30),
                connector=aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS),
            ) as session:
                relay_down_at, relay_up_at = seconds * 0.3, seconds * 0.4
                database_restart_at = seconds * 0.6
                mixed: list[dict[str, Any]] = []
                sent = 0
                next_sample = 0.0
                while (elapsed := time.monotonic() - started) < seconds:
                    if relay.process is not None and relay_down_at <= elapsed < relay_up_at:
                        await relay.stop()
                        events.append(f"{elapsed:.0f} s: relay stopped")
                    elif relay.process is None and elapsed >= relay_up_at:
                        await relay.start()
                        events.append(f"{elapsed:.0f} s: relay started")
                    if database_restart_at <= elapsed and restart is None:
                        # In the background: webhooks keep coming while it is down.
                        restart = asyncio.create_task(restart_postgres(elapsed))
                    if elapsed >= next_sample:
                        rss.append(rss_mib(pid))
                        fds.append(open_descriptors(pid))
                        next_sample = elapsed + 5
                    # A second's webhooks: half welcome emails we count, half the PBX mix.
                    if not mixed:
                        mixed = signed_requests(int(rate * 30), ACCOUNTS, seed=sent)
                    for _ in range(max(1, int(rate / 2))):
                        account = f"soak-{len(welcomed) + 1}"
                        welcomed.append(account)
                        for request in (welcome(account), mixed.pop()):
                            task = asyncio.create_task(post(session, port, request))
                            pending.add(task)
                            task.add_done_callback(pending.discard)
                            task.add_done_callback(count_tries)
                            sent += 1
                    await asyncio.sleep(1)
                if restart is not None:
                    await restart
                if pending:
                    async with asyncio.timeout(120):
                        await asyncio.wait(pending)
            # Drained: every welcome arrived, nothing left to send.
            wanted = {f"{a}@soak.example" for a in welcomed}
            conn = await asyncpg.connect(dsn)
            try:
                drained = await drain(conn, arrivals, wanted, events, started)
                got, missing = drained.got, drained.missing
                if drained.missing:
                    await explain_missing(conn, drained.missing)
                states: dict[str, int] = {
                    row["state"]: row["count"]
                    for row in await conn.fetch(
                        "SELECT state, count(*) FROM notices GROUP BY state"
                    )
                }
            finally:
                await conn.close()
        finally:
            await stop_daemon(process)
            await relay.stop()
    duplicates = sum(n - 1 for address, n in got.items() if address in wanted and n > 1)
    rss_first, rss_last, rss_flat = flat(rss, 10)
    fd_first, fd_last, fd_flat = flat(fds, 10 + SMTP_POOL)
    # Two outages, each may duplicate what was in flight (64 by default).
    ok = rss_flat and fd_flat and duplicates <= 2 * 64 and not refused and not missing
    print(f"soak: {minutes:g} min at {rate:g} webhooks/s, {sum(tries.values())} webhooks")
    for line in events:
        print(f"  {line}")
    print(f"  tries per webhook: {dict(sorted(tries.items()))}; refused: {len(refused)}")
    for reason in sorted(set(refused))[:5]:
        print(f"    {reason[:200]}")
    came = "all arrived" if not missing else f"{len(missing)} never arrived"
    print(f"  welcome emails: {len(wanted)} posted, {came}, {duplicates} duplicates")
    print(f"  notices at the end: {states}")
    print(f"  RSS MiB: first quarter {rss_first:.0f}, last {rss_last:.0f} (flat: {rss_flat})")
    print(f"  open fds: first quarter {fd_first:.0f}, last {fd_last:.0f} (flat: {fd_flat})")
    print("soak: ok" if ok else "soak: FAILED")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=float, default=20, help="webhooks a second")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ntfy-soak-") as folder:
        Path(folder).chmod(0o755)
        ok = asyncio.run(soak(args.minutes, args.rate, Path(folder)))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
