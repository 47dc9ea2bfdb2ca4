"""The `.eml` folder: what notifyd sends through when no relay is configured (`[smtp] host
= ""`, as `make run` does), one file per notice, ending each send in transport.py's
`Outcome` as the SMTP relay does; transport_for picks it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from notifyd.mail.transport import Outcome, Verdict


class EmlFolder:
    """Writes each notice as `<notice id>.eml` (a retry overwrites it, never duplicates),
    with the Return-Path a mailbox would add: the envelope sender, shown as delivered."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def send(self, data: bytes, sender: str, recipient: str, message_id: str) -> Outcome:
        name = message_id.strip("<>").split("@", 1)[0] + ".eml"
        delivered = b"Return-Path: <" + sender.encode() + b">\r\n" + data
        try:
            await asyncio.to_thread(self._write, self.folder / name, delivered)
        except OSError as error:  # full, read-only, gone: kept queued, as for a relay down
            reply = f"451 cannot write to the .eml folder {self.folder}: {error.strerror}"
            return Outcome(Verdict.RETRY, reply, "outbox")
        return Outcome(Verdict.SENT, f"250 written to {self.folder / name}")

    @contextlib.asynccontextmanager
    async def sending(
        self, data: bytes, sender: str, recipient: str, message_id: str
    ) -> AsyncIterator[Outcome]:
        yield await self.send(data, sender, recipient, message_id)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        # Written aside and renamed, so a reader never sees half a message; a part written
        # goes, or each retry would leave one more on the disk that is full.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def close(self) -> None:
        return None
