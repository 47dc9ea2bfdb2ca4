"""An embedded PostgreSQL in the state folder, so one command runs notifyd on a fresh machine.

The server binaries come from the `pgserver` wheel. We drive them with initdb/pg_ctl
ourselves instead of `pgserver.get_server()` because its server object is synchronous,
stops through `atexit`, and cannot be stopped and started again under the daemon's exit
stack (the outage tests need exactly that).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

# PostgreSQL refuses to run as root; as root we run it as this unprivileged user.
POSTGRES_SYSTEM_USER = "notifyd-pg"
SOCKET_NAME = ".s.PGSQL.5432"
# sun_path is 108 bytes on Linux; keep a margin.
MAX_SOCKET_PATH = 100


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be installed, initialised or started."""


def binaries_dir() -> Path:
    # Located without importing pgserver: its import starts a lock file and warns about
    # XDG_RUNTIME_DIR, none of which we use.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "database.url is empty and the embedded PostgreSQL is not installed: "
            "pip install 'notifyd[embedded]' or set [database] url"
        )
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in `pgdata`, reachable over a Unix socket."""

    def __init__(self, pgdata: Path, *, durable: bool = True, log_file: Path | None = None):
        self.pgdata = pgdata.resolve()
        self.durable = durable
        self.log_file = log_file or self.pgdata.parent / "postgres.log"
        self.socket_dir = self._choose_socket_dir()
        self._user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    async def start(self) -> str:
        """Initialise the data folder if new, start the server if not running; return a DSN."""
        await asyncio.to_thread(self._start_blocking)
        return self.dsn()

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop_blocking)

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run(["pg_ctl", "-D", str(self.pgdata), "status"], check=False)
        return result.returncode == 0

    def _choose_socket_dir(self) -> Path:
        if len(str(self.pgdata / SOCKET_NAME)) <= MAX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"notifyd-pg-{digest}"

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(binaries_dir() / argv[0]), *argv[1:]]
        result = subprocess.run(  # noqa: S603  (fixed binaries, no shell)
            command,
            capture_output=True,
            text=True,
            user=self._user,
            timeout=120,
            check=False,
            # Without this, initdb as another user fails in a cwd that user cannot read.
            cwd="/",
        )
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
                f" (server log: {self.log_file})"
            )
        return result

    def _prepare_for_system_user(self) -> None:
        if self._user is None:
            return
        try:
            entry = pwd.getpwnam(self._user)
        except KeyError:
            subprocess.run(  # noqa: S603
                [
                    "/usr/sbin/useradd",
                    "--system",
                    "--no-create-home",
                    "-s",
                    "/bin/false",
                    self._user,
                ],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(self._user)
        # The server must traverse to its folders and run the wheel's binaries.
        for folder in [*self.pgdata.parents, *binaries_dir().parents]:
            if folder.exists():
                folder.chmod(folder.stat().st_mode | 0o011)
        install = binaries_dir().parent
        for path in install.rglob("*"):
            path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
        for folder in {self.pgdata, self.socket_dir}:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.chown(folder, entry.pw_uid, entry.pw_gid)
        self.log_file.touch(exist_ok=True)
        shutil.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _start_blocking(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_for_system_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                [
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        if self.is_running():
            return
        options = [
            "-h ''",  # no TCP: the socket is enough and exposes nothing
            f"-k {self.socket_dir}",
            "-c max_connections=200",
            # Its data is on a local disk and mostly cached: at the default (4, for spinning
            # disks) a small install's wave of webhooks locked its few subscribers by
            # reading the whole table (bench/intake_cost.py: store_and_lock 169-186 ->
            # 115-124 us a webhook at 2,000 subscribers). Usual advice for SSDs too.
            "-c random_page_cost=1.1",
        ]
        if not self.durable:
            # Throwaway test clusters: durability costs time and proves nothing there.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            [
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            ]
        )

    def _stop_blocking(self) -> None:
        if self.is_running():
            self._run(["pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"])
