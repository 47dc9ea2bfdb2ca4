"""SMTP mail transactions pipelined (RFC 2920) on a connection that is already set up.

aiosmtplib connects, negotiates TLS, says EHLO and logs in; when the server offers
PIPELINING, the connection's transport is handed to a `PipelinedSession`, which sends MAIL,
RCPT and DATA in one write and the message in a second: two round trips a message instead
of four. aiosmtplib cannot do this itself: it reads one reply per command written and drops
replies that arrive before it asked for them. Postfix, Exim and the big providers' relays
offer PIPELINING; with a server that does not, notifyd keeps using aiosmtplib's
transactions.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

# A line of the message starting with "." gets another one (RFC 5321 §4.5.2).
_LEADING_DOT = re.compile(rb"(?m)^\.")
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class Refused(Exception):
    """The server answered a step of the transaction with an error reply; `ended`: the
    reply to the final dot, after which the server has ended the transaction itself."""

    def __init__(self, step: str, reply: Reply, *, ended: bool = False) -> None:
        super().__init__(f"{step}: {reply}")
        self.step = step  # "mail" | "rcpt" | "data"
        self.reply = reply
        self.ended = ended


class Lost(Exception):
    """The connection broke or timed out; `after_data`: once the whole message was sent,
    so the server may have accepted it."""

    def __init__(self, reason: str, *, after_data: bool, timeout: bool) -> None:
        super().__init__(reason)
        self.after_data = after_data
        self.timeout = timeout


def wire_message(data: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, the final dot."""
    # `mime.compose` already writes CRLF and rarely a leading dot: counting is much cheaper
    # than substituting over a 200 KB attachment.
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf or data.count(b"\n") != crlf:
        data = _BARE_LINE_END.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    return data + b".\r\n"


class PipelinedSession(asyncio.Protocol):
    """Replies are numbered in the order of the commands written: the reply to the n-th
    command is the n-th reply (RFC 2920 §3.1). So the next message's commands can be
    written while the previous message still waits for the reply to its final dot, and
    each waits only for its own replies."""

    def __init__(
        self,
        transport: asyncio.BaseTransport,
        timeout: float,
        *,
        size: bool,
        smtputf8: bool = False,
    ) -> None:
        self.timeout = timeout
        self._size = size  # the server takes MAIL's SIZE= (RFC 1870)
        # The server takes UTF-8 addresses and headers (RFC 6531).
        self.smtputf8 = smtputf8
        self._transport = transport
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._commands = 0  # written so far
        self._received = 0  # replies so far
        self._replies: dict[int, Reply] = {}  # arrived, by number, until taken
        # Bare futures and timer handles on the loop, not asyncio.Event and asyncio.timeout:
        # on 3.11 each of those asks for the running loop, a getpid() system call, several
        # times a reply.
        self._loop = asyncio.get_running_loop()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        # Done once the last message written has its outcome recorded.
        self._unsettled: asyncio.Future[None] | None = None
        self._lost: str | None = None
        transport.set_protocol(self)

    # -- asyncio.Protocol --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[: end + 1]).rstrip(b"\r\n").decode("utf-8", "replace")
            del self._buffer[: end + 1]
            self._lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":  # the last line of a reply
                code = int(line[:3]) if line[:3].isdigit() else 0
                number, self._received = self._received, self._received + 1
                self._replies[number] = Reply(code, "\n".join(self._lines))
                self._lines = []
                _wake(self._waiters.get(number))

    def eof_received(self) -> bool:
        self._lose("the server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"connection lost: {exc}" if exc else "the server closed the connection")

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        for waiter in self._waiters.values():
            _wake(waiter)

    # -- the transaction ----------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    async def send(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        written: Callable[[], None] | None = None,
        settled: asyncio.Future[None] | None = None,
    ) -> Reply:
        """One message to one recipient; the server's reply to the final dot. Raises
        `Refused` (the connection stays usable, after `reset` unless `ended`) or `Lost`.
        `written` is called once the whole message is written: from then on the next
        message's commands may follow on this connection. The next message's final dot
        waits for `settled` (this one's outcome recorded), so that however many messages
        overlap, a crash leaves at most one accepted and not recorded."""
        if any(c in address for address in (sender, recipient) for c in "<>\r\n"):
            raise ValueError(f"not an address for an SMTP envelope: {sender!r} -> {recipient!r}")
        message = wire_message(data)
        options = f" SIZE={len(message) - 3}" if self._size else ""
        utf8 = not (sender.isascii() and recipient.isascii())
        if utf8 and not self.smtputf8:
            raise ValueError("an address that is not ASCII needs a server that offers SMTPUTF8")
        if utf8:
            options += " SMTPUTF8"
        first = self._write(
            f"MAIL FROM:<{sender}>{options}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode(),
            commands=3,
        )
        mail, rcpt, start = [await self._reply(first + n) for n in range(3)]
        if start.code == 354 and not (_ok(mail) and _ok(rcpt)):
            # A server that let DATA in without a sender or recipient: end it empty.
            await self._reply(self._write(b".\r\n"))
        if not _ok(mail):
            raise Refused("mail", mail)
        if not _ok(rcpt):
            raise Refused("rcpt", rcpt)
        if start.code != 354:
            raise Refused("data", start)
        previous = self._unsettled
        if previous is not None and not previous.done():
            # All but the final dot now: the server reads the message while the previous
            # outcome is recorded, and only the dot waits.
            self._write(message[:-3], commands=0)
            await previous
            self._unsettled = settled
            number = self._write(message[-3:])
        else:
            self._unsettled = settled
            number = self._write(message)
        if written is not None:
            written()
        final = await self._reply(number, after_data=True)
        if not _ok(final):
            raise Refused("data", final, ended=True)
        return final

    async def reset(self) -> None:
        reply = await self._reply(self._write(b"RSET\r\n"))
        if not _ok(reply):
            raise Lost(f"RSET refused: {reply}", after_data=False, timeout=False)

    async def quit(self) -> None:
        try:
            await self._reply(self._write(b"QUIT\r\n"))
        finally:
            self.close()

    def close(self) -> None:
        self._lose("closed")
        self._transport.close()

    def _write(self, data: bytes, *, commands: int = 1) -> int:
        """Write `commands` commands (or a message); the number of the first one's reply."""
        if not self.is_connected:
            raise Lost(self._lost or "closed", after_data=False, timeout=False)
        # uvloop's transports write like asyncio's but do not subclass WriteTransport.
        cast(asyncio.WriteTransport, self._transport).write(data)
        first, self._commands = self._commands, self._commands + commands
        return first

    async def _reply(self, number: int, *, after_data: bool = False) -> Reply:
        """The reply to command `number`, within the timeout of starting to wait for it."""
        while number not in self._replies:
            if self._lost is not None:
                raise Lost(self._lost, after_data=after_data, timeout=False)
            self._waiters[number] = waiter = self._loop.create_future()
            timer = self._loop.call_later(self.timeout, _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                self.close()
                raise Lost(
                    f"no reply within {self.timeout:g} s", after_data=after_data, timeout=True
                ) from None
            finally:
                timer.cancel()
                del self._waiters[number]
        return self._replies.pop(number)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _ok(reply: Reply) -> bool:
    return 200 <= reply.code < 300
