"""The spool of `notifyd send --spool DIR`: events notifyd could not take in time, kept on
the sender's disk until `notifyd send --drain DIR` posts them (send_cli.py runs both).

A PBX keeps working while notifyd is down: its dialplan hands the event to a local folder
in milliseconds and a timer drains it later. One file per event, named so that names sort
in the order they were spooled (`<nanoseconds>-<webhook-id>.json`); each is written to a
dot-file, synced and renamed into place, so a drain never reads half an event and a power
cut leaves either the whole event or none. A file holds the body exactly as first sent, its
`webhook-id` and the URL it was for; the signature is made at each attempt (client.py), as
notifyd refuses a `webhook-timestamp` older than five minutes. Drains take `DIR/.lock`
(flock), so two timers firing together post each event once; an event refused with a 4xx
is moved to `DIR/rejected/` with notifyd's reason beside it, and the drain goes on.

Standard library only, like client.py: `notifyd send` must not load the daemon.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from notifyd.client import Client, Outgoing, Refused, Unavailable

SUFFIX = ".json"
REJECTED = "rejected"
LOCK = ".lock"


class Spooled(NamedTuple):
    path: Path
    url: str
    outgoing: Outgoing


class Drained:
    """What one drain did. `stopped`: why it left the rest for the next one. (A plain class:
    dataclasses costs `notifyd send` 10 ms of start, client.py says.)"""

    def __init__(self) -> None:
        self.sent = 0
        self.rejected = 0
        self.left = 0
        self.stopped: str | None = None


def put(directory: Path, url: str, outgoing: Outgoing) -> Path:
    """Write one event into the spool, atomically and durably; its path."""
    # Events name subscribers and their callers: readable by the spooling user only.
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{outgoing.webhook_id}{SUFFIX}"
    record = {
        "webhook_id": outgoing.webhook_id,
        "url": url,
        "spooled_at": datetime.now(UTC).isoformat(),
        "body": outgoing.body.decode(),
    }
    return _write_atomically(directory / name, record)


def _write_atomically(path: Path, record: dict[str, Any]) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(handle, json.dumps(record, ensure_ascii=False).encode())
        os.fsync(handle)
    finally:
        os.close(handle)
    os.replace(partial, path)
    _sync_folder(path.parent)
    return path


def _sync_folder(directory: Path) -> None:
    """The rename itself survives a power cut only once the folder is synced."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def pending(directory: Path) -> Iterator[Path]:
    """The spooled files, oldest first (names start with the time they were spooled)."""
    if not directory.is_dir():
        return iter(())
    names = sorted(
        entry.name
        for entry in os.scandir(directory)
        if entry.is_file() and entry.name.endswith(SUFFIX) and not entry.name.startswith(".")
    )
    return (directory / name for name in names)


def read(path: Path) -> Spooled:
    """Raises ValueError for a file that is not a spooled event."""
    record = json.loads(path.read_text(encoding="utf-8"))
    try:
        return Spooled(path, record["url"], Outgoing(record["webhook_id"], record["body"].encode()))
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"not a spooled event: missing {error}") from None


def set_aside(path: Path, reason: dict[str, Any]) -> Path:
    """Move a spooled event that will never be accepted to `rejected/`, with the reason."""
    folder = path.parent / REJECTED
    folder.mkdir(mode=0o700, exist_ok=True)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        record = {"unreadable": path.read_text(encoding="utf-8", errors="replace")}
    if not isinstance(record, dict):
        record = {"unreadable": record}
    kept = _write_atomically(folder / path.name, {**record, "rejected": reason})
    path.unlink()
    _sync_folder(path.parent)
    return kept


@contextmanager
def drain_lock(directory: Path) -> Iterator[bool]:
    """True while this process alone drains `directory`; False when another drain holds it
    (the lock goes with the process, so a killed drain leaves none behind)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(handle)


def drain(directory: Path, client_for: Callable[[str], Client]) -> Drained:
    """Post every spooled event in order, each under its own id; remove each once accepted.
    Stops at the first one notifyd cannot take now (the rest keep their order for the next
    drain); one refused is set aside and the drain goes on. Call under `drain_lock`."""
    done = Drained()
    paths = list(pending(directory))
    for index, path in enumerate(paths):
        try:
            spooled = read(path)
        except (ValueError, UnicodeDecodeError) as error:
            set_aside(path, {"status": None, "error": "unreadable", "detail": str(error)})
            done.rejected += 1
            continue
        try:
            client_for(spooled.url).send(spooled.outgoing)
        except Refused as refusal:
            reason = {"status": refusal.status, "error": refusal.code, "detail": refusal.detail}
            set_aside(path, {**reason, "fields": refusal.fields})
            done.rejected += 1
            continue
        except Unavailable as error:
            done.stopped = error.reason
            done.left = len(paths) - index
            return done
        path.unlink()
        _sync_folder(directory)
        done.sent += 1
    return done
