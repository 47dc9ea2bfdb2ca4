"""sd_notify: READY, RELOADING, STOPPING and WATCHDOG for `Type=notify` units.

Ten lines of datagram socket; the PyPI `sdnotify` package is unmaintained since 2017 and
synchronous in the same way, so there is nothing to gain from the dependency.
"""

from __future__ import annotations

import os
import socket
import time


def notify(*states: str) -> bool:
    """Send states such as "READY=1" to systemd; False when not run under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall("\n".join(states).encode())
    return True


def reloading() -> bool:
    # Type=notify-reload (systemd 253) wants the monotonic time with RELOADING=1.
    return notify(
        "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    )


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds, or None if it asked none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
