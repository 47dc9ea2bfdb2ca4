"""What every benchmark needs: a throwaway PostgreSQL, an SMTP sink in its own process, a
notifyd process, and a table of medians [min-max] with the ratio to the raw baseline."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

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

    async def fresh_database(self) -> str:
        """A new empty database; returns its DSN."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.server.dsn("postgres"))
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
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
    async def start(cls, report_every: int = 100) -> Sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "sink.py"),
            "--report-every",
            str(report_every),
            stdout=asyncio.subprocess.PIPE,
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


def notifyd_config(root: Path, name: str, dsn: str, smtp_port: int, extra: str = "") -> Path:
    path = root / f"{name}.toml"
    path.write_text(
        f"""
[daemon]
state_dir = "{root / name}"
[http]
host = "127.0.0.1"
port = 0
[database]
url = "{dsn}"
[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "Bench <bench@voip.example>"
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
    return process, port


async def stop_daemon(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await process.wait()
