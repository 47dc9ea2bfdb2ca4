"""Sending: the only module that speaks SMTP (aiosmtplib); the `.eml` folder stand-in
(no relay) is eml_folder.py's. `notifyd test-email` (probe.py) drives the same connection,
`smtp_client`, step by step.

Every send ends in an `Outcome`: sent (with the server's reply), retry (4xx, timeouts,
connection faults) or failed (5xx). Connections are pooled and reused: a new connection
per message costs several times the throughput. aiosmtplib sets each connection up (TLS,
EHLO, AUTH); where the relay offers PIPELINING the transactions are `pipelined`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import aiosmtplib
import structlog

from notifyd.mail.addresses import needs_smtputf8
from notifyd.mail.pipelined import Lost, PipelinedSession, Refused
from notifyd.settings import STREAMS, SmtpSettings

log = structlog.get_logger(__name__)


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reply: str
    # The SMTP error class for metrics: "4xx", "5xx", "connection", "timeout", "auth",
    # "refused" (a 5xx before any message: the relay refuses us), ...
    error_kind: str | None = None
    # The connection broke after the final "." of DATA: the server may have accepted it.
    possibly_sent: bool = False
    # A 5xx answer to RCPT: this address is refused (a hard bounce), not the message.
    bounce: bool = False


class Transport(Protocol):
    async def send(self, data: bytes, sender: str, recipient: str, message_id: str) -> Outcome:
        """Send one message (already serialised, and signed if DKIM is on)."""
        ...

    def sending(
        self, data: bytes, sender: str, recipient: str, message_id: str
    ) -> AbstractAsyncContextManager[Outcome]:
        """`send`, for a caller that records the outcome inside the block: the connection
        does not let the server accept its next message until the block is left. So a
        crash duplicates at most one message a connection (the one not yet recorded)."""
        ...

    async def close(self) -> None: ...


def classify(error: Exception, *, setup: bool = False) -> Outcome:
    """Map an aiosmtplib exception to what the queue should do with the notice; `setup`:
    raised while the connection was set up (greeting, EHLO, STARTTLS, AUTH)."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        refusals = error.recipients
        code = refusals[0].code if refusals else 451
        reply = refusals[0].message if refusals else str(error)
        return _by_code(code, reply, rcpt=True)
    if isinstance(error, aiosmtplib.SMTPAuthenticationError) and error.code >= 500:
        # A wrong password fails every notice alike: keep them queued, the admin must act.
        return Outcome(Verdict.RETRY, f"{error.code} {error.message}", "auth")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        if setup and error.code >= 500:
            # Before any message is named, the relay refuses us, not the notice: every
            # notice would meet the same refusal. Kept queued; the breaker pauses delivery.
            return Outcome(Verdict.RETRY, f"{error.code} {error.message}", "refused")
        return _by_code(error.code, error.message)
    if isinstance(error, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError | TimeoutError):
        return Outcome(Verdict.RETRY, f"timeout: {error}", "timeout")
    if isinstance(error, aiosmtplib.SMTPException | OSError):
        return Outcome(Verdict.RETRY, f"connection: {error}", "connection")
    raise error


NO_SMTPUTF8 = Outcome(
    Verdict.FAILED,
    "the address's local part is not ASCII and the relay does not offer SMTPUTF8 (RFC 6531)",
    "smtputf8",
)


def _by_code(code: int, message: str, *, rcpt: bool = False) -> Outcome:
    reply = f"{code} {message}".strip()
    if 500 <= code < 600:
        return Outcome(Verdict.FAILED, reply, "5xx", bounce=rcpt and _about_address(code, message))
    return Outcome(Verdict.RETRY, reply, "4xx")


# RFC 3463 enhanced status codes: class.subject.detail at the start of the reply text.
_ENHANCED = re.compile(r"5\.(\d{1,3})\.(\d{1,3})\b")


def _about_address(code: int, message: str) -> bool:
    """Whether a refusal of RCPT says the address itself is bad (a hard bounce). Relays also
    refuse RCPT for their own reasons: relaying denied (5.7.1), a syntax error (5.5.2), a
    full mailbox (5.2.2), which would count good addresses towards undeliverable."""
    enhanced = _ENHANCED.match(message)
    if enhanced is not None:
        # X.1.x: no such mailbox, domain or syntax; X.2.1: the mailbox is disabled.
        return enhanced[1] == "1" or (enhanced[1], enhanced[2]) == ("2", "1")
    # Without one, the replies RFC 5321 gives for a mailbox that is not there.
    return code in (550, 551, 553)


# A pooled connection: aiosmtplib's, or a pipelining relay's once set up.
Connection = aiosmtplib.SMTP | PipelinedSession


@dataclass(frozen=True)
class Turn:
    """One message's use of a pipelined connection: `hand_over` gives the connection to the
    next message once this one is written; `settled` is done once the outcome is recorded."""

    hand_over: Callable[[PipelinedSession], None]
    settled: asyncio.Future[None]


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """How the relay's certificate is checked: [smtp] ca_file, or the system's CAs; none of
    it with verify_tls = false."""
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if not settings.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def smtp_client(settings: SmtpSettings, tls: ssl.SSLContext) -> aiosmtplib.SMTP:
    """A connection to the relay as the daemon makes it (`notifyd test-email` too)."""
    s = settings
    return aiosmtplib.SMTP(
        hostname=s.host,
        port=s.port,
        use_tls=s.security == "tls",
        start_tls=s.security == "starttls",
        username=s.username or None,
        password=s.password or None,
        timeout=s.timeout_seconds,
        tls_context=tls if s.security != "none" else None,
    )


class SmtpRelay:
    """A bounded pool of reusable SMTP connections to one relay."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        # With each idle connection, aiosmtplib's, the settling of its last message (see
        # `sending`); a pipelined session keeps track of its own.
        self._idle: asyncio.LifoQueue[tuple[Connection, asyncio.Future[None] | None]] = (
            asyncio.LifoQueue()
        )
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._closed = False
        # One SSL context for every connection: building one per connection costs 5x.
        self._tls = tls_context(settings)

    def _client(self) -> aiosmtplib.SMTP:
        return smtp_client(self.settings, self._tls)

    async def send(self, data: bytes, sender: str, recipient: str, message_id: str) -> Outcome:
        async with self.sending(data, sender, recipient, message_id) as outcome:
            return outcome

    @contextlib.asynccontextmanager
    async def sending(
        self, data: bytes, sender: str, recipient: str, message_id: str
    ) -> AsyncIterator[Outcome]:
        settled = asyncio.get_running_loop().create_future()
        try:
            yield await self._send(data, sender, recipient, settled)
        finally:
            settled.set_result(None)

    async def _send(
        self, data: bytes, sender: str, recipient: str, settled: asyncio.Future[None]
    ) -> Outcome:
        await self._slots.acquire()
        handed_over = False

        def hand_over(session: PipelinedSession) -> None:
            # The whole message is written and RFC 2920 lets the next transaction follow
            # its final dot: the connection, and its slot, go to the next message now,
            # while this one waits for its reply. One round trip a message, not two.
            nonlocal handed_over
            if not handed_over and not self._closed:
                handed_over = True
                self._idle.put_nowait((session, None))
                self._slots.release()

        turn = Turn(hand_over, settled)
        connection, reused, previous = self._take()
        try:
            if previous is not None and not previous.done():
                await previous  # aiosmtplib's: one message at a time, each recorded first
            outcome, kept = await self._send_on(connection, data, sender, recipient, turn)
            if outcome.error_kind == "connection" and reused and not outcome.possibly_sent:
                # An idle connection the server closed since: not the message's fault.
                connection = self._client()
                outcome, kept = await self._send_on(connection, data, sender, recipient, turn)
        except BaseException:
            if not handed_over:  # else the next message has it
                _quietly_close(connection)
            raise
        finally:
            if not handed_over:
                self._slots.release()
        if handed_over:
            return outcome
        if kept is not None and not self._closed:
            self._idle.put_nowait((kept, None if isinstance(kept, PipelinedSession) else settled))
        elif kept is not None:
            _quietly_close(kept)
        return outcome

    def _take(self) -> tuple[Connection, bool, asyncio.Future[None] | None]:
        while not self._idle.empty():
            connection, settling = self._idle.get_nowait()
            if connection.is_connected:
                return connection, True, settling
        return self._client(), False, None

    async def _send_on(
        self,
        connection: Connection,
        data: bytes,
        sender: str,
        recipient: str,
        turn: Turn,
    ) -> tuple[Outcome, Connection | None]:
        """The outcome, and the connection to keep for the next message (None: closed)."""
        if isinstance(connection, aiosmtplib.SMTP) and not connection.is_connected:
            try:
                await connection.connect()
                if connection.is_ehlo_or_helo_needed:
                    # Now rather than in the first sendmail: the extensions decide the sender.
                    with contextlib.suppress(aiosmtplib.SMTPHeloError):  # HELO, then
                        await connection.ehlo()
            except Exception as error:  # classified below; anything unknown is re-raised
                _quietly_close(connection)
                return classify(error, setup=True), None
            if connection.supports_extension("pipelining") and connection.transport:
                connection = PipelinedSession(
                    connection.transport,
                    self.settings.timeout_seconds,
                    size=connection.supports_extension("size"),
                    smtputf8=connection.supports_extension("smtputf8"),
                )
        if needs_smtputf8(sender, recipient) and not _offers_smtputf8(connection):
            # The address has no ASCII form: this relay cannot take it, now or later. The
            # notice's fault on this relay, not the relay's (no breaker) nor a bounce.
            return NO_SMTPUTF8, connection
        if isinstance(connection, PipelinedSession):
            return await _send_pipelined(connection, data, sender, recipient, turn)
        return await _send_with_aiosmtplib(connection, data, sender, recipient)

    async def close(self) -> None:
        self._closed = True
        while not self._idle.empty():
            connection, _settling = self._idle.get_nowait()
            try:
                await asyncio.wait_for(connection.quit(), timeout=2)
            except (aiosmtplib.SMTPException, Lost, OSError, TimeoutError):
                connection.close()


def _offers_smtputf8(connection: Connection) -> bool:
    if isinstance(connection, PipelinedSession):
        return connection.smtputf8
    return connection.supports_extension("smtputf8")


async def _send_with_aiosmtplib(
    client: aiosmtplib.SMTP, data: bytes, sender: str, recipient: str
) -> tuple[Outcome, Connection | None]:
    data_sent = False
    # aiosmtplib writes the addresses as UTF-8 only when asked to.
    options = ["SMTPUTF8"] if needs_smtputf8(sender, recipient) else []
    try:
        errors, response = await client.sendmail(sender, [recipient], data, mail_options=options)
        data_sent = True
        if recipient in errors:
            code, text = errors[recipient]
            return _by_code(code, text, rcpt=True), client
        return Outcome(Verdict.SENT, response), client
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
        if not reusable:
            _quietly_close(client)
        return outcome, client if reusable else None


async def _send_pipelined(
    session: PipelinedSession,
    data: bytes,
    sender: str,
    recipient: str,
    turn: Turn,
) -> tuple[Outcome, Connection | None]:
    try:
        reply = await session.send(
            sender, recipient, data, written=lambda: turn.hand_over(session), settled=turn.settled
        )
        return Outcome(Verdict.SENT, reply.text), session
    except Refused as refusal:
        outcome = _by_code(refusal.reply.code, refusal.reply.text, rcpt=refusal.step == "rcpt")
        if refusal.ended:
            # The server ended the transaction; the next one may already be under way.
            return outcome, session
        try:
            await session.reset()
        except Lost:
            session.close()
            return outcome, None
        return outcome, session
    except Lost as lost:
        session.close()
        kind = "timeout" if lost.timeout else "connection"
        # After the final ".", the server may have taken the message: retry (at least
        # once), and count the possible duplicate.
        return Outcome(Verdict.RETRY, f"{kind}: {lost}", kind, possibly_sent=lost.after_data), None


def _quietly_close(connection: Connection) -> None:
    if connection.is_connected:
        connection.close()


def transport_for(settings: SmtpSettings, outbox: Path) -> Transport:
    if settings.host:
        return SmtpRelay(settings)
    from notifyd.mail.eml_folder import EmlFolder  # it builds on this module's Outcome

    return EmlFolder(outbox)


class Relays:
    """The transport of each mail stream ([smtp.streams]): streams whose relay settings are
    the same share one pool (so, with no stream of its own, marketing leaves as all mail
    does); a marketing relay of its own gets a pool of its own."""

    def __init__(self, settings: SmtpSettings, outbox: Path) -> None:
        pools: dict[tuple[object, ...], Transport] = {}
        self.by_stream: dict[str, Transport] = {}
        for name in STREAMS:
            stream = settings.stream(name)
            if stream.relay not in pools:
                pools[stream.relay] = transport_for(stream, outbox)
            self.by_stream[name] = pools[stream.relay]

    def __getitem__(self, stream: str) -> Transport:
        return self.by_stream[stream]

    async def close(self) -> None:
        for transport in {id(t): t for t in self.by_stream.values()}.values():
            await transport.close()
