"""An embedded PostgreSQL in the state folder, so one command runs notifyd on a fresh machine.

The server binaries come from the `pgserver` wheel. We drive them with initdb/pg_ctl
ourselves instead of `pgserver.get_server()` because its server object is synchronous,
stops through `atexit`, and cannot be stopped and started again under the daemon's exit
stack (the outage tests need exactly that).

Who stops it is decided in one place, `notifyd.storage.db.open_database`: the daemon that
holds the state folder (notifyd.storage.state_folder), or a command that started the server itself
(`started_here`), so that `notifyd migrate` beside a running daemon uses the daemon's server
and leaves it running. The daemon also keeps it running (`keep_running`).

Who can reach it: nobody but notifyd. It listens on a Unix socket only, in a folder only
its user may enter (the data folder, or a private temporary one when the path is too long
for a socket), and asks for a password even there (SCRAM), generated once and kept in the
state folder readable by notifyd alone.

As root (PostgreSQL refuses to run as root) it runs as the system user `notifyd-pg`,
created if missing, with that user's group and no other. For it to reach its data and the
wheel's binaries, folders it must pass through are given the "others may traverse" bit
(x, not r), and the wheel's files "others may read"; only where missing, and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)

# PostgreSQL refuses to run as root; as root we run it as this unprivileged user.
POSTGRES_SYSTEM_USER = "notifyd-pg"
SOCKET_NAME = ".s.PGSQL.5432"
# sun_path is 108 bytes on Linux; keep a margin.
MAX_SOCKET_PATH = 100
PASSWORD_FILE = "postgres-password"  # noqa: S105  (a file name)
# The first line of the pg_hba.conf we write: its presence says the cluster asks a password.
HBA_MARK = "# notifyd: password (SCRAM) on the Unix socket only; no TCP listener."
HBA = f"{HBA_MARK}\nlocal all all scram-sha-256\n"
# Seconds between two looks at the server, and the longest wait between two restarts.
WATCH_SECONDS = 1.0
MAX_RESTART_DELAY = 30.0
STOP_SECONDS = 60


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be installed, initialised or started."""


def binaries_dir() -> Path:
    # Located without importing pgserver: its import starts a lock file and warns about
    # XDG_RUNTIME_DIR, none of which we use.
    import importlib.util

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
        self.password_file = self.pgdata.parent / PASSWORD_FILE
        self.socket_dir = self.pgdata
        # True once this process has started the server (rather than found it running).
        self.started_here = False
        self._made_socket_dir: Path | None = None
        self._user = _system_user() if os.geteuid() == 0 else None

    def dsn(self, database: str = "postgres") -> str:
        # Quoted: a state folder may hold spaces, '#', '&' or non-ASCII letters.
        password = quote(self._password(), safe="")
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://postgres:{password}@/{quote(database, safe='')}?host={host}"

    async def start(self) -> str:
        """Initialise the data folder if new, start the server if not running; return a DSN."""
        await asyncio.to_thread(self._start_blocking)
        return self.dsn()

    async def stop(self) -> None:
        """Stop the server (pg_ctl's fast mode) and remove the socket folder it was given."""
        await asyncio.to_thread(self._stop_blocking)

    def is_running(self) -> bool:
        return self._postmaster() is not None

    async def keep_running(self) -> None:
        """Restart the server whenever it is found dead, with back-off, until cancelled.
        For the daemon that owns the state folder: nobody else would start it again."""
        delay = 1.0
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if self.is_running():
                delay = 1.0
                continue
            log.warning("embedded postgresql is down; restarting it")
            try:
                await self.start()
            except (EmbeddedPostgresError, OSError, subprocess.SubprocessError) as error:
                log.error(
                    "embedded postgresql did not restart",
                    error=str(error)[-500:],
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RESTART_DELAY)
                continue
            log.info("embedded postgresql restarted", socket=str(self.socket_dir))

    def initialise(self) -> None:
        """A new cluster in `pgdata` (trust authentication until `_require_password`, which
        runs before the server first starts: nothing can connect in between)."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        self._prepare_for_system_user()
        self.run_as_server_user(
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

    def run_as_server_user(
        self, argv: list[str], *, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """One of the wheel's programs, as the server's user (and group, and no other)."""
        command = [str(binaries_dir() / argv[0]), *argv[1:]]
        user = self._user
        result = subprocess.run(  # noqa: S603  (fixed binaries, no shell)
            command,
            input=stdin,
            capture_output=True,
            text=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
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

    # -- the running server --------------------------------------------------------------

    def _postmaster(self) -> tuple[int, Path] | None:
        """The live server's pid and socket folder, from its postmaster.pid; None if none."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, and someone else's: pg_ctl would say the same
        socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4] else self.socket_dir
        return pid, socket_dir

    def _password(self) -> str:
        return self.password_file.read_text().strip()

    def _password_required(self) -> bool:
        try:
            hba = (self.pgdata / "pg_hba.conf").read_text()
        except OSError:
            return False
        return hba.startswith(HBA_MARK) and self.password_file.exists()

    def _require_password(self) -> None:
        """Give the superuser a new password and let nothing in without it. The server must
        be stopped: the password is set in single-user mode, which needs no login."""
        if self._password_required():
            return
        password = secrets.token_hex(24)
        self.password_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.password_file.with_name(f".{PASSWORD_FILE}.{os.getpid()}")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(password + "\n")
        partial.replace(self.password_file)
        # Hashed for SCRAM, which the pg_hba.conf below asks for: pgserver's 16 does so by
        # default, but before 14 PostgreSQL hashed with md5, and the tests run this class
        # on 13's binaries too (tests/integration/postgres_support.py).
        scram = "password_encryption=scram-sha-256"
        result = self.run_as_server_user(
            ["postgres", "--single", "-c", scram, "-D", str(self.pgdata), "postgres"],
            stdin=f"ALTER ROLE postgres PASSWORD '{password}'\n",
        )
        if "ERROR" in result.stderr:
            raise EmbeddedPostgresError(f"setting the password failed: {result.stderr[-500:]}")
        # Written in place: the file keeps its owner (the server's user).
        with (self.pgdata / "pg_hba.conf").open("w") as handle:
            handle.write(HBA)

    def _choose_socket_dir(self) -> Path:
        if len(os.fsencode(self.pgdata / SOCKET_NAME)) <= MAX_SOCKET_PATH:
            return self.pgdata
        # An unpredictable name, made 0700 by mkdtemp: no other local user can enter it or
        # have prepared it. Running servers are found through postmaster.pid, not the name.
        folder = Path(tempfile.mkdtemp(prefix="notifyd-pg-"))
        if self._user is not None:
            os.chown(folder, self._user.pw_uid, self._user.pw_gid)
        self._made_socket_dir = folder
        return folder

    def _start_blocking(self) -> None:
        # pg_ctl runs the server through a shell, with paths in double quotes.
        unsafe = sorted(set('"$`\\') & set(f"{self.pgdata}{self.log_file}"))
        if unsafe:
            raise EmbeddedPostgresError(
                f"the state folder's path holds {' '.join(unsafe)}, which pg_ctl cannot pass "
                "to its shell: choose another [daemon] state_dir"
            )
        if not (self.pgdata / "PG_VERSION").exists():
            self.initialise()
        else:
            self._prepare_for_system_user()
        running = self._postmaster()
        if running is not None:
            self.socket_dir = running[1]
            if not self._password_required():
                raise EmbeddedPostgresError(
                    f"the PostgreSQL running on {self.pgdata} accepts logins without a "
                    f"password (made by an older notifyd); stop it (pg_ctl -D "
                    f"'{self.pgdata}' stop) and start notifyd again"
                )
            return
        self._require_password()
        # A restart keeps the socket where it was: the pool's DSN names that folder.
        if self._made_socket_dir is None or not self._made_socket_dir.is_dir():
            self.socket_dir = self._choose_socket_dir()
        options = [
            "-h ''",  # no TCP: the socket is enough and exposes nothing
            # pg_ctl hands these to a shell.
            f"-k {shlex.quote(str(self.socket_dir))}",
            "-c max_connections=200",
            # Its data is on a local disk and mostly cached: at the default (4, for spinning
            # disks) a small install's wave of webhooks locked its few subscribers by
            # reading the whole table (bench/intake_cost.py: store_and_lock 169-186 ->
            # 115-124 us a webhook at 2,000 subscribers). Usual advice for SSDs too.
            "-c random_page_cost=1.1",
            # Its log is a file beside ours that no masking reaches: without DETAIL lines,
            # which quote rows and keys ("Failing row contains (..., ana@..., ...)"). notifyd
            # still receives them with the error, and logs them masked.
            "-c log_error_verbosity=terse",
        ]
        if not self.durable:
            # Throwaway test clusters: durability costs time and proves nothing there.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self.run_as_server_user(
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
        self.started_here = True

    def _stop_blocking(self) -> None:
        # SIGINT is pg_ctl's "fast" mode. Signalled directly rather than through pg_ctl: that
        # needs no path to the data folder (something may have closed a folder above it
        # since the start) and no program run as another user.
        running = self._postmaster()
        if running is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(running[0], signal.SIGINT)
            deadline = time.monotonic() + STOP_SECONDS
            while self._postmaster() is not None:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"the embedded PostgreSQL did not stop in {STOP_SECONDS} s "
                        f"(server log: {self.log_file})"
                    )
                time.sleep(0.05)
        self._remove_made_socket_dir()

    def _remove_made_socket_dir(self) -> None:
        if self._made_socket_dir is not None:
            shutil.rmtree(self._made_socket_dir, ignore_errors=True)
            self._made_socket_dir = None

    # -- as root ---------------------------------------------------------------------------

    def _prepare_for_system_user(self) -> None:
        user = self._user
        if user is None:
            return
        opened: list[str] = []
        # The server must pass through to its folders and to the wheel's binaries.
        for folder in [*self.pgdata.parents, *binaries_dir().parents]:
            if folder.exists() and not folder.stat().st_mode & 0o001:
                folder.chmod(folder.stat().st_mode | 0o001)
                opened.append(str(folder))
        for path in [binaries_dir().parent, *binaries_dir().parent.rglob("*")]:
            wanted = 0o005 if path.is_dir() else 0o004
            if path.stat().st_mode & wanted != wanted:
                path.chmod(path.stat().st_mode | wanted)
                opened.append(str(path))
        if opened:
            log.info(
                "folders opened for the embedded postgresql's user",
                user=POSTGRES_SYSTEM_USER,
                paths=opened[:20],
                more=max(0, len(opened) - 20),
            )
        self.pgdata.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.pgdata, user.pw_uid, user.pw_gid)
        self.log_file.touch(exist_ok=True)
        shutil.chown(self.log_file, user.pw_uid, user.pw_gid)


def _system_user() -> pwd.struct_passwd:
    """The server's user, created (a system account, no home, no shell) if missing."""
    try:
        return pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        pass
    subprocess.run(  # noqa: S603
        [
            "/usr/sbin/useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/bin/false",
            POSTGRES_SYSTEM_USER,
        ],
        check=True,
        capture_output=True,
    )
    log.info("system user created for the embedded postgresql", user=POSTGRES_SYSTEM_USER)
    return pwd.getpwnam(POSTGRES_SYSTEM_USER)
