"""Sending: the only module that speaks SMTP (aiosmtplib), plus the `.eml` folder stand-in.

Every send ends in an `Outcome`: sent (with the server's reply), retry (4xx, timeouts,
connection faults) or failed (5xx). Connections are pooled and reused: a new connection
per message costs several times the throughput.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiosmtplib
import structlog

from notifyd.settings import SmtpSettings

log = structlog.get_logger(__name__)


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reply: str
    # The SMTP error class for metrics: "4xx", "5xx", "connection", "timeout", "auth", ...
    error_kind: str | None = None
    # The connection broke after the final "." of DATA: the server may have accepted it.
    possibly_sent: bool = False
    # A 5xx answer to RCPT: this address is refused (a hard bounce), not the message.
    bounce: bool = False


class Transport(Protocol):
    async def send(self, data: bytes, sender: str, recipient: str, message_id: str) -> Outcome:
        """Send one message (already serialised, and signed if DKIM is on)."""
        ...

    async def close(self) -> None: ...


class EmlFolder:
    """Writes each notice as `<notice id>.eml` (a retry overwrites it, never duplicates)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def send(self, data: bytes, sender: str, recipient: str, message_id: str) -> Outcome:
        name = message_id.strip("<>").split("@", 1)[0] + ".eml"
        await asyncio.to_thread(self._write, self.folder / name, data)
        return Outcome(Verdict.SENT, f"250 written to {self.folder / name}")

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        # Written aside and renamed, so a reader never sees half a message.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)

    async def close(self) -> None:
        return None


def classify(error: Exception) -> Outcome:
    """Map an aiosmtplib exception to what the queue should do with the notice."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        refusals = error.recipients
        code = refusals[0].code if refusals else 451
        reply = refusals[0].message if refusals else str(error)
        return _by_code(code, reply, rcpt=True)
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        # A wrong password fails every notice alike: keep them queued, the admin must act.
        return Outcome(Verdict.RETRY, f"{error.code} {error.message}", "auth")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return _by_code(error.code, error.message)
    if isinstance(error, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError | TimeoutError):
        return Outcome(Verdict.RETRY, f"timeout: {error}", "timeout")
    if isinstance(error, aiosmtplib.SMTPException | OSError):
        return Outcome(Verdict.RETRY, f"connection: {error}", "connection")
    raise error


def _by_code(code: int, message: str, *, rcpt: bool = False) -> Outcome:
    reply = f"{code} {message}".strip()
    if 500 <= code < 600:
        return Outcome(Verdict.FAILED, reply, "5xx", bounce=rcpt)
    return Outcome(Verdict.RETRY, reply, "4xx")


class SmtpRelay:
    """A bounded pool of reusable SMTP connections to one relay."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._closed = False
        # One SSL context for every connection: building one per connection costs 5x.
        self._tls = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        if not settings.verify_tls:
            self._tls.check_hostname = False
            self._tls.verify_mode = ssl.CERT_NONE

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            username=s.username or None,
            password=s.password or None,
            timeout=s.timeout_seconds,
            tls_context=self._tls if s.security != "none" else None,
        )

    async def send(self, data: bytes, sender: str, recipient: str, message_id: str) -> Outcome:
        async with self._slots:
            client, reused = self._take()
            try:
                outcome, keep = await self._send_on(client, data, sender, recipient)
                if outcome.error_kind == "connection" and reused:
                    # An idle connection the server closed since: not the message's fault.
                    await _quietly_close(client)
                    client = self._client()
                    outcome, keep = await self._send_on(client, data, sender, recipient)
            except BaseException:
                await _quietly_close(client)
                raise
            if keep and not self._closed:
                self._idle.put_nowait(client)
            else:
                await _quietly_close(client)
            return outcome

    def _take(self) -> tuple[aiosmtplib.SMTP, bool]:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                return client, True
        return self._client(), False

    async def _send_on(
        self, client: aiosmtplib.SMTP, data: bytes, sender: str, recipient: str
    ) -> tuple[Outcome, bool]:
        """Returns the outcome and whether the connection can be reused."""
        data_sent = False
        try:
            if not client.is_connected:
                await client.connect()
            errors, response = await client.sendmail(sender, [recipient], data)
            data_sent = True
            if recipient in errors:
                code, text = errors[recipient]
                return _by_code(code, text, rcpt=True), True
            return Outcome(Verdict.SENT, response), True
        except Exception as error:  # classified below; anything unknown is re-raised
            outcome = classify(error)
            reusable = client.is_connected and isinstance(error, aiosmtplib.SMTPResponseException)
            if reusable:
                try:
                    await client.rset()
                except (aiosmtplib.SMTPException, OSError):
                    reusable = False
            if outcome.error_kind == "timeout" and not data_sent:
                # We cannot tell whether the final "." was read: at-least-once says retry,
                # and the possible duplicate is counted.
                outcome = Outcome(outcome.verdict, outcome.reply, "timeout", possibly_sent=True)
            return outcome, reusable

    async def close(self) -> None:
        self._closed = True
        while not self._idle.empty():
            client = self._idle.get_nowait()
            try:
                await asyncio.wait_for(client.quit(), timeout=2)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


async def _quietly_close(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        client.close()


def transport_for(settings: SmtpSettings, outbox: Path) -> Transport:
    if settings.host:
        return SmtpRelay(settings)
    return EmlFolder(outbox)
