"""Webhook 202 -> SMTP 250 latency of notifyd, against a raw SMTP transaction, same run.

Starts a throwaway (durable) PostgreSQL and an aiosmtpd sink on loopback, runs notifyd as
a separate process, posts signed `account.created` webhooks one at a time and measures,
for each, the time from the daemon's 202 to the sink accepting the message. The baseline
is aiosmtplib sending an equivalent prebuilt message to the same sink over one reused
connection: the floor any SMTP-backed daemon pays.

    .venv/bin/python bench/e2e_latency.py [--events 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks import Webhook

from notifyd.storage.embedded import EmbeddedPostgres

SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdefghij").decode()


class Sink:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[float]] = {}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        now = time.perf_counter()
        for rcpt in envelope.rcpt_tos:
            self.arrivals[rcpt] = now
            waiter = self.waiters.pop(rcpt, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)
        return "250 OK"

    def expect(self, rcpt: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[rcpt] = future
        return future


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def notifyd_run(base: str, sink: Sink, events: int) -> list[float]:
    latencies = []
    signer = Webhook(SECRET)
    async with aiohttp.ClientSession() as session:
        for n in range(events):
            rcpt = f"bench{n}-{uuid.uuid4().hex[:6]}@client.example"
            body = json.dumps(
                {
                    "type": "account.created",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "data": {"account_id": f"acc-{n}", "email": rcpt, "username": f"user{n}"},
                }
            )
            now = datetime.now(UTC)
            msg_id = f"msg_{uuid.uuid4().hex}"
            headers = {
                "content-type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(msg_id, now, body),
            }
            arrived = sink.expect(rcpt)
            async with session.post(f"{base}/v1/webhooks/billing", data=body, headers=headers) as r:
                answered = time.perf_counter()
                assert r.status == 202, await r.text()
            accepted = await asyncio.wait_for(arrived, timeout=30)
            latencies.append(accepted - answered)
    return latencies


async def baseline_run(port: int, sink: Sink, events: int) -> list[float]:
    latencies = []
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    try:
        for n in range(events):
            rcpt = f"base{n}-{uuid.uuid4().hex[:6]}@client.example"
            message = EmailMessage()
            message["From"] = "bench@voip.example"
            message["To"] = rcpt
            message["Subject"] = "Bun venit! Contul dvs. a fost creat"
            message.set_content("Contul dvs. a fost creat.\n" * 20)
            message.add_alternative("<p>Contul dvs. a fost creat.</p>" * 20, subtype="html")
            started = time.perf_counter()
            await client.send_message(message)
            latencies.append(time.perf_counter() - started)
    finally:
        await client.quit()
    return latencies


async def start_daemon(config: Path) -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyd",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async with asyncio.timeout(60):
        async for raw in process.stdout:
            line: dict[str, Any] = json.loads(raw) if raw.startswith(b"{") else {}
            if line.get("event") == "ready":
                port = int(line["listen"].rsplit(":", 1)[1])
                break
        else:
            raise RuntimeError("daemon exited before ready")

    async def drain() -> None:
        assert process.stdout is not None
        async for _ in process.stdout:
            pass

    asyncio.create_task(drain())  # noqa: RUF006  (lives as long as the process)
    return process, port


async def main(events: int, runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="ntfy-bench-"))
    root.chmod(0o755)
    pg = EmbeddedPostgres(root / "pgdata", durable=True)
    await pg.start()
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink, hostname="sink.bench"), "127.0.0.1", 0
    )
    smtp_port = server.sockets[0].getsockname()[1]
    results: dict[str, list[list[float]]] = {"notifyd": [], "baseline": []}
    try:
        for run in range(runs):
            database = f"bench_{run}_{uuid.uuid4().hex[:6]}"
            import asyncpg

            conn = await asyncpg.connect(pg.dsn("postgres"))
            await conn.execute(f"CREATE DATABASE {database}")
            await conn.close()
            config = root / f"bench-{run}.toml"
            config.write_text(
                f"""
[daemon]
state_dir = "{root / "state"}"
[http]
host = "127.0.0.1"
port = 0
[database]
url = "{pg.dsn(database)}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "Bench <bench@voip.example>"
[sources.billing]
secrets = ["{SECRET}"]
[defaults]
quiet_hours = ""
[logging]
level = "info"
"""
            )
            process, http_port = await start_daemon(config)
            try:
                results["notifyd"].append(
                    await notifyd_run(f"http://127.0.0.1:{http_port}", sink, events)
                )
            finally:
                process.terminate()
                await process.wait()
            results["baseline"].append(await baseline_run(smtp_port, sink, events))
    finally:
        server.close()
        await pg.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(f"webhook 202 -> SMTP 250, {events} sequential events, {runs} runs (median [min-max])")
    print(f"{'':24}{'p50 ms':>24}{'p99 ms':>24}")
    rows = {}
    for name, label in (("notifyd", "notifyd 202->250"), ("baseline", "raw aiosmtplib send")):
        p50s = [percentile(r, 0.5) * 1000 for r in results[name]]
        p99s = [percentile(r, 0.99) * 1000 for r in results[name]]
        rows[name] = (statistics.median(p50s), statistics.median(p99s))
        cells = [f"{statistics.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]" for v in (p50s, p99s)]
        print(f"{label:24}{cells[0]:>24}{cells[1]:>24}")
    print(
        f"ratio notifyd/baseline: p50 {rows['notifyd'][0] / rows['baseline'][0]:.1f}x, "
        f"p99 {rows['notifyd'][1] / rows['baseline'][1]:.1f}x"
    )
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.runs))
