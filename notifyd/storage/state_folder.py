"""One daemon to a state folder whose PostgreSQL it runs: a lock taken before anything starts.

A second `notifyd run` on the same folder would share the first one's embedded server, and
stop it when it exits. The lock is an flock on `notifyd.lock`: the kernel drops it when the
process dies, however it dies, so a crash leaves nothing to clean up. Other commands
(`migrate`, `privacy`, `check-config`) do not take it; they ask whether it is held.

Commands that use the embedded server without a daemon share it (db.py): each holds a
shared flock on `commands.lock` while it does, and only the last one out, alone on that
lock, stops a server that a command started (`commands-started-postgres` says one did).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

LOCK_FILE = "notifyd.lock"
COMMANDS_LOCK = "commands.lock"
# Held by the one command starting (or finding) the server: two at once each ran pg_ctl.
START_LOCK = "commands-start.lock"
# Written by a command that started the server; the last command out stops it then.
STARTED_BY_COMMAND = "commands-started-postgres"


class StateFolderInUse(OSError):
    """Another notifyd runs on this state folder."""


class StateFolderLock:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._descriptor: int | None = None

    def acquire(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
            os.close(descriptor)
            raise StateFolderInUse(
                f"another notifyd (pid {holder}) runs on the state folder {self.state_dir}; "
                "stop it first, or give this one another [daemon] state_dir"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def in_use(state_dir: Path) -> bool:
    """Whether a daemon holds the state folder now."""
    try:
        descriptor = os.open(state_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    return False


class CommandsSharing:
    """A command's share of the embedded server (a shared flock on `commands.lock`), taken
    before it starts or finds the server: a command that is stopping the server holds the
    lock alone meanwhile, so a command arriving then waits and starts it afresh."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._state_dir = state_dir
        self._descriptor = os.open(state_dir / COMMANDS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._descriptor, fcntl.LOCK_SH)

    @contextlib.asynccontextmanager
    async def starting(self) -> AsyncIterator[None]:
        """Held while this command starts or finds the server, one command at a time: two
        that found no server each ran `pg_ctl start`, and the second failed ("could not
        start server"); the next one in now finds the server the first started."""
        descriptor = os.open(self._state_dir / START_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def last_one(self) -> bool:
        """Whether no other command uses the server; if so, it stays this one's alone until
        close(). (On Linux a refused change of flock leaves no lock: this is the end.)"""
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._descriptor)
