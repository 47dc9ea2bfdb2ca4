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
from collections import deque
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
    """The server answered a step of the transaction with an error reply."""

    def __init__(self, step: str, reply: Reply) -> None:
        super().__init__(f"{step}: {reply}")
        self.step = step  # "mail" | "rcpt" | "data"
        self.reply = reply


class Lost(Exception):
    """The connection broke or timed out; `after_data`: once the whole message was sent,
    so the server may have accepted it."""

    def __init__(self, reason: str, *, after_data: bool, timeout: bool) -> None:
        super().__init__(reason)
        self.after_data = after_data
        self.timeout = timeout


def wire_message(data: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, the final dot."""
    data = _BARE_LINE_END.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return _LEADING_DOT.sub(b"..", data) + b".\r\n"


class PipelinedSession(asyncio.Protocol):
    def __init__(self, transport: asyncio.BaseTransport, timeout: float, *, size: bool) -> None:
        self.timeout = timeout
        self._size = size  # the server takes MAIL's SIZE= (RFC 1870)
        self._transport = transport
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: deque[Reply] = deque()
        self._arrived = asyncio.Event()
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
                self._replies.append(Reply(code, "\n".join(self._lines)))
                self._lines = []
                self._arrived.set()

    def eof_received(self) -> bool:
        self._lose("the server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"connection lost: {exc}" if exc else "the server closed the connection")

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._arrived.set()

    # -- the transaction ----------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._lost is None and not self._transport.is_closing()

    async def send(self, sender: str, recipient: str, data: bytes) -> Reply:
        """One message to one recipient; the server's reply to the final dot. Raises
        `Refused` (the connection stays usable after `reset`) or `Lost`."""
        if any(c in address for address in (sender, recipient) for c in "<>\r\n"):
            raise ValueError(f"not an address for an SMTP envelope: {sender!r} -> {recipient!r}")
        message = wire_message(data)
        options = f" SIZE={len(message) - 3}" if self._size else ""
        # ASCII: an address that needs SMTPUTF8 fails here, before anything is sent.
        self._write(
            f"MAIL FROM:<{sender}>{options}\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode("ascii")
        )
        mail, rcpt, start = (await self._reply(), await self._reply(), await self._reply())
        if start.code == 354 and not (_ok(mail) and _ok(rcpt)):
            # A server that let DATA in without a sender or recipient: end it empty.
            self._write(b".\r\n")
            await self._reply()
        if not _ok(mail):
            raise Refused("mail", mail)
        if not _ok(rcpt):
            raise Refused("rcpt", rcpt)
        if start.code != 354:
            raise Refused("data", start)
        self._write(message)
        final = await self._reply(after_data=True)
        if not _ok(final):
            raise Refused("data", final)
        return final

    async def reset(self) -> None:
        self._write(b"RSET\r\n")
        reply = await self._reply()
        if not _ok(reply):
            raise Lost(f"RSET refused: {reply}", after_data=False, timeout=False)

    async def quit(self) -> None:
        try:
            self._write(b"QUIT\r\n")
            await self._reply()
        finally:
            self.close()

    def close(self) -> None:
        self._lose("closed")
        self._transport.close()

    def _write(self, data: bytes) -> None:
        if not self.is_connected:
            raise Lost(self._lost or "closed", after_data=False, timeout=False)
        # uvloop's transports write like asyncio's but do not subclass WriteTransport.
        cast(asyncio.WriteTransport, self._transport).write(data)

    async def _reply(self, *, after_data: bool = False) -> Reply:
        try:
            async with asyncio.timeout(self.timeout):
                while not self._replies:
                    if self._lost is not None:
                        raise Lost(self._lost, after_data=after_data, timeout=False)
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            self.close()
            raise Lost(
                f"no reply within {self.timeout:g} s", after_data=after_data, timeout=True
            ) from None
        return self._replies.popleft()


def _ok(reply: Reply) -> bool:
    return 200 <= reply.code < 300
