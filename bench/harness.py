"""What every benchmark needs: a throwaway PostgreSQL, an SMTP sink in its own process, a
notifyd process, and a table of medians [min-max] with the ratio to the raw baseline."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from standardwebhooks import Webhook

from notifyd.catalogue.samples import USUAL_SOURCE, sample_event
from notifyd.storage import schema
from notifyd.storage.embedded import EmbeddedPostgres

HERE = Path(__file__).resolve().parent


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cell(values: Sequence[float], digits: int = 0) -> str:
    """'median [min-max]'."""
    return (
        f"{statistics.median(values):,.{digits}f} [{min(values):,.{digits}f}-"
        f"{max(values):,.{digits}f}]"
    )


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"


@dataclass
class Postgres:
    server: EmbeddedPostgres
    root: Path
    last: str = ""  # the database the last run used

    async def fresh_database(self) -> str:
        """A new empty database; returns its DSN. The last run's database is dropped and
        the server checkpointed first, so that a benchmark does not pay for the writes of
        the one before it (the checkpoint's, or autovacuum's on the tables it filled)."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.server.dsn("postgres"))
        try:
            if self.last:
                await conn.execute(f"DROP DATABASE IF EXISTS {self.last} WITH (FORCE)")
            await conn.execute("CHECKPOINT")
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        self.last = name
        return self.server.dsn(name)


@asynccontextmanager
async def throwaway_postgres() -> AsyncIterator[Postgres]:
    """A durable (fsync on) PostgreSQL in a temporary folder, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="ntfy-bench-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "pgdata", durable=True)
    await server.start()
    try:
        yield Postgres(server, root)
    finally:
        await server.stop()
        shutil.rmtree(root, ignore_errors=True)


class Sink:
    """bench/sink.py in its own process, so the sink's CPU is not the load generator's."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port
        self.count = 0
        self.last_at = 0.0
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls, report_every: int = 100, arrivals: Path | None = None, delay: float = 0.0
    ) -> Sink:
        options = ["--report-every", str(report_every), "--delay", str(delay)]
        if arrivals is not None:
            options += ["--arrivals", str(arrivals)]
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(HERE / "sink.py"), *options, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        return cls(process, int(line.split()[1]))

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            count, at = raw.split()
            self.count, self.last_at = int(count), float(at)
            self._changed.set()

    async def wait_for(self, count: int) -> float:
        """Waits until the sink accepted `count` messages in all; the wall time it did.
        (Callers bound the wait with asyncio.timeout.)"""
        while self.count < count:
            await self._changed.wait()
            self._changed.clear()
        return self.last_at

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()
        self._reader.cancel()


def notifyd_config(
    root: Path, name: str, dsn: str, smtp_port: int, extra: str = "", *, connections: int = 0
) -> Path:
    """`connections`: `[smtp] pool_size`, when not the default."""
    path = root / f"{name}.toml"
    pool = f"pool_size = {connections}" if connections else ""
    path.write_text(
        f"""
[daemon]
state_dir = "{root / name}"
[http]
host = "127.0.0.1"
port = 0
[http.admin]
# One port, as before the listeners were split: the benchmarks read /metrics and post
# broadcasts where they post webhooks (the split changes nothing they measure).
shared = true
[database]
url = "{dsn}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "Bench <bench@voip.example>"
{pool}
[defaults]
quiet_hours = ""
[logging]
level = "info"
{extra}
"""
    )
    return path


async def start_daemon(config: Path) -> tuple[asyncio.subprocess.Process, int]:
    """`notifyd run` as a separate process; returns it and its HTTP port once ready."""
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
    if folder := os.environ.get(PROFILE):
        _profilers[process.pid] = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")),
            *("record", "--pid", str(process.pid), "--rate", "100", "--format", "raw"),
            "--nonblocking",  # not paused at each sample: the daemon's timing is left alone
            *("--output", str(Path(folder) / f"notifyd-{process.pid}.txt")),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    return process, port


# NOTIFYD_BENCH_PROFILE=FOLDER: every daemon a benchmark starts is sampled by py-spy (a dev
# dependency) from ready to stop, its stacks written to FOLDER/notifyd-<pid>.txt for
# bench/profile_summary.py. The sampling costs the daemon some CPU: profile runs are for
# shares, not for the table.
PROFILE = "NOTIFYD_BENCH_PROFILE"
_profilers: dict[int, asyncio.subprocess.Process] = {}


async def stop_daemon(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await process.wait()
    if profiler := _profilers.pop(process.pid, None):
        async with asyncio.timeout(60):
            await profiler.wait()


@dataclass
class Row:
    """One line of the table: notifyd's figures and the raw baseline's, from the same runs."""

    what: str
    unit: str
    ours: list[float]
    baseline: list[float]
    baseline_name: str = ""
    digits: int = 0

    def ratio(self) -> str:
        if not self.ours or not self.baseline or not statistics.median(self.baseline):
            return "-"
        return f"{statistics.median(self.ours) / statistics.median(self.baseline):.2f}x"


def table(rows: Sequence[Row]) -> str:
    """A Markdown table of medians [min-max]: pasted as it is into docs/performance.md."""
    lines = [
        "| benchmark | unit | notifyd | baseline | raw baseline | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        base = cell(row.baseline, row.digits) if row.baseline else "-"
        lines.append(
            f"| {row.what} | {row.unit} | {cell(row.ours, row.digits) if row.ours else '-'} "
            f"| {row.baseline_name or '-'} | {base} | {row.ratio()} |"
        )
    return "\n".join(lines)


async def run_json(*args: str, limit_seconds: float = 300) -> dict[str, Any]:
    """Runs a helper script of bench/ as its own process; its last stdout line, as JSON."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(limit_seconds):
        out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"{args[0]} exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


async def start_listening(*args: str) -> tuple[asyncio.subprocess.Process, int]:
    """A helper server of bench/ in its own process; returns it and the port it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    if not line.startswith(b"port "):
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return process, int(line.split()[1])


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        await process.wait()


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used so far (Linux /proc); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids(pg: Postgres) -> list[int]:
    """The postmaster and its children (one backend per connection, the WAL writer...)."""
    try:
        postmaster = int((pg.server.pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == postmaster:
                pids.append(int(entry))
    return pids


class CpuWatch:
    """The CPU some processes use from now on: a measure of cost that, unlike a rate, does
    not move with what the rest of a shared machine is doing. `pids` is asked again at the
    end, so a process started in between (a new pooled connection's backend) counts; one
    that ended in between takes its share with it."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        self.pids = pids
        self.start = {pid: cpu_seconds(pid) for pid in pids()}

    def seconds(self) -> float:
        return sum(max(cpu_seconds(pid) - self.start.get(pid, 0.0), 0.0) for pid in self.pids())


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- signed webhooks ---------------------------------------------------------------------------

PBX_SECRET = "whsec_" + base64.b64encode(b"bench-pbx-secret-0123456789abcdef").decode()
BILLING_SECRET = "whsec_" + base64.b64encode(b"bench-billing-secret-0123456789ab").decode()
SOURCES = f"""
[sources.pbx]
secrets = ["{PBX_SECRET}"]
[sources.billing]
secrets = ["{BILLING_SECRET}"]
"""

# What a switch and a billing system post on an ordinary day: mostly missed calls and
# balance updates; security and payment events now and then.
MIX = (
    ("call.missed", 40),
    ("billing.balance_updated", 20),
    ("fax.sent", 8),
    ("billing.payment_confirmed", 8),
    ("billing.credit_added", 6),
    ("account.updated", 6),
    ("account.password_changed", 4),
    ("usage.daily_limit_exceeded", 4),
    ("account.ip_allowlist_changed", 4),
)


def _context(rng: random.Random) -> dict[str, Any]:
    """The fields a PBX adds that notifyd does not use: they make real bodies 0.4-2 KB."""
    return {
        "trunk": f"trunk-{rng.randint(1, 40):02d}.sip.voip.example",
        "sip_call_id": uuid.UUID(int=rng.getrandbits(128)).hex * rng.randint(1, 3),
        "user_agent": "Asterisk PBX 20.5.2 " + "x" * rng.randint(0, 900),
        "route": [f"hop-{n}.voip.example" for n in range(rng.randint(4, 12))],
    }


def signed_requests(
    count: int, accounts: int, seed: int = 0, kinds: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """`count` signed, valid webhooks of the mix (or of `kinds`), each with its own id."""
    rng = random.Random(seed)
    names = list(kinds) or [kind for kind, _ in MIX]
    weights = [1] * len(names) if kinds else [weight for _, weight in MIX]
    signers = {"pbx": Webhook(PBX_SECRET), "billing": Webhook(BILLING_SECRET)}
    now = datetime.now(UTC)
    requests = []
    for n in range(count):
        kind = rng.choices(names, weights)[0]
        account = f"acc-{rng.randint(1, accounts)}" if not kinds else f"acc-{n % accounts + 1}"
        # Each call from its own number, to the account's own number, at its own minute:
        # a real day's bodies repeat little of what a template formats.
        event = sample_event(kind, account, now - timedelta(seconds=rng.randint(0, 600)))
        data = event["data"]
        for field in ("caller_number", "remote_number"):
            if field in data:
                data[field] = f"+4072{rng.randint(0, 9_999_999):07d}"
        if "called_number" in data:
            data["called_number"] = f"+4021{int(account.removeprefix('acc-')):07d}"
        data["pbx"] = _context(rng)
        body = json.dumps(event)
        source = USUAL_SOURCE[kind]
        webhook_id = f"msg_{uuid.uuid4().hex}"
        requests.append(
            {
                "path": f"/v1/webhooks/{source}",
                "headers": {
                    "Content-Type": "application/json",
                    "webhook-id": webhook_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": signers[source].sign(webhook_id, now, body),
                },
                "body": body,
            }
        )
    return requests


def write_requests(path: Path, requests: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in requests), encoding="utf-8")
    return path


async def add_subscribers(dsn: str, count: int) -> None:
    """A migrated database with `count` subscribers acc-1... (user<n>@client.example)."""
    conn = await asyncpg.connect(dsn)
    try:
        await schema.migrate(conn)
        await conn.execute(
            """INSERT INTO subscribers (account_id, email, name)
               SELECT 'acc-' || g, 'user' || g || '@client.example', 'Ana Popescu'
               FROM generate_series(1, $1) AS g""",
            count,
        )
    finally:
        await conn.close()
