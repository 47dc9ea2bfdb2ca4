"""One daemon to a state folder whose PostgreSQL it runs: a lock taken before anything starts.

A second `notifyd run` on the same folder would share the first one's embedded server, and
stop it when it exits. The lock is an flock on `notifyd.lock`: the kernel drops it when the
process dies, however it dies, so a crash leaves nothing to clean up. Other commands
(`migrate`, `check-config`) take no lock; they ask whether it is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "notifyd.lock"


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
