"""The SMTP fault matrix's relay and its cells (issue 16): an aiosmtpd server with STARTTLS
and AUTH, as operators run their relays, scripted to answer one stage of the conversation
(greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, after the final dot) with an error
reply, a dropped connection or silence past notifyd's timeout.

A row of the matrix is one daemon and one database; its cells run one after the other,
each with its own address, so a row costs one start and each cell a second or so. What a
cell checks: the notice's state while the fault lasts (a retry with back-off, a failure,
or kept by the open breaker), what it is once the relay is healthy again (sent once, or
failed with the reply on file), the hard-bounce count, and the breaker's trips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    Running,
    SmtpSink,
    base_config,
    eventually,
    load_config,
    running_daemon,
)
from tests.integration.smtp_support import Accounts, certificates

SETUP = ("greeting", "ehlo", "starttls", "auth")
TRANSACTION = ("mail", "rcpt", "data", "dot")
# notifyd's SMTP timeout in the matrix, and how long a stalled server stays silent.
TIMEOUT = 1.0
STALL = 3 * TIMEOUT
# Each wait of a cell: long enough for a few retries, short enough that a stuck cell does
# not hold the row for long.
CELL_WAIT = 8.0
PASSWORD = "matrix-relay-pass"

# What a relay writes with each code (RFC 3463 enhanced codes, Postfix's wording), by stage
# where the same code means different things.
REPLIES = {
    421: "421 4.3.2 Service shutting down, closing transmission channel",
    450: "450 4.2.1 Mailbox busy, try again later",
    451: "451 4.3.0 Local error in processing, try again later",
    452: "452 4.3.1 Insufficient system storage",
    454: "454 4.7.0 TLS not available due to local problem",
    500: "500 5.5.2 Syntax error, command unrecognized",
    535: "535 5.7.8 Authentication credentials invalid",
    550: "550 5.7.1 Access denied",
    552: "552 5.3.4 Message size exceeds fixed limit",
    554: "554 5.7.1 Service unavailable; client host blocked",
}
RCPT_REPLIES = {
    550: "550 5.1.1 <user>: Recipient address rejected: User unknown",
    552: "552 5.2.2 Mailbox full",
    554: "554 5.7.1 <user>: Relay access denied",
}
GREETING_REPLIES = {554: "554 5.3.2 No SMTP service here"}


def reply_for(stage: str, fault: str) -> str:
    code = int(fault)
    special = {"rcpt": RCPT_REPLIES, "greeting": GREETING_REPLIES}.get(stage, {})
    return special.get(code) or REPLIES[code]


@dataclass(frozen=True)
class Expected:
    """What a cell must end in."""

    # "retry": queued with back-off while the fault lasts, sent once it is gone;
    # "failed": failed at once with the reply on file; "paused": the relay refuses us
    # (not the message): the breaker opens, the notice is kept and sent once it is gone.
    state: str
    reasons: tuple[str, ...]  # how last_error may start while the fault lasts
    bounce: bool = False  # counted as a hard bounce of the address
    trips: int = 0  # circuit breaker trips


def expected(stage: str, fault: str) -> Expected:
    if fault == "stall":
        return Expected("retry", ("timeout",))
    if fault == "drop":
        return Expected("retry", ("connection",))
    code = int(fault)
    reply = reply_for(stage, fault)
    if code == 421:
        # The relay closes after it; a client may see the close before it reads the reply
        # (aiosmtplib turns a 421 into "not connected", replies pipelined behind it never
        # come).
        return Expected("retry", (reply, "connection"))
    if code < 500:
        return Expected("retry", (reply,))
    if stage in SETUP:
        # Before any message is named, a refusal is of us, relay-wide: nothing to fail.
        return Expected("paused", (reply,), trips=1)
    # A hard bounce only where the reply is about the recipient's address (RFC 3463 X.1.x).
    return Expected("failed", (reply,), bounce=stage == "rcpt" and reply[4:].startswith("5.1."))


@dataclass
class ScriptedRelay(SmtpSink):
    """The conftest sink, with one fault armed at a time."""

    stage: str = ""
    fault: str = ""
    live: set[SMTP] = field(default_factory=set)
    ca_file: Path = Path()  # the CA of the relay's certificate, for notifyd's config

    def arm(self, stage: str, fault: str) -> None:
        self.stage, self.fault = stage, fault

    def disarm(self) -> None:
        self.stage = self.fault = ""

    async def hang_up(self) -> None:
        """Close every connection, as a relay closes idle ones: the next message starts
        from the greeting, where a fault of the setup can meet it."""
        for server in list(self.live):
            if server.transport is not None:
                server.transport.close()
        await asyncio.sleep(0.05)  # the client sees the close before its next message

    async def strike(self, server: SMTP, stage: str) -> bool:
        """Play the fault if it is armed for `stage`; True when the stage must not go on."""
        if stage != self.stage:
            return False
        if self.fault == "stall":
            await asyncio.sleep(STALL)  # cancelled when the client gives up and closes
            return True
        if self.fault != "drop":
            await server.push(reply_for(stage, self.fault))
            if not self.fault.startswith("421"):
                return True
        # 421 closes the channel (RFC 5321 §3.8), and so does a drop.
        assert server.transport is not None
        server.transport.close()
        await asyncio.sleep(STALL)
        return True

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.stage == "dot":
            if self.fault in ("stall", "drop") or self.fault.startswith("421"):
                if self.fault.startswith("421"):
                    await server.push(reply_for("dot", self.fault))
                if self.fault != "stall":
                    assert server.transport is not None
                    server.transport.close()
                await asyncio.sleep(STALL)
            return reply_for("dot", self.fault)
        return await super().handle_DATA(server, session, envelope)


class ScriptedSMTP(SMTP):
    """aiosmtpd's server, asking the relay before each stage whether to fail it."""

    def __init__(self, relay: ScriptedRelay, **options: Any) -> None:
        super().__init__(relay, **options)
        self.relay = relay
        self.helo_reply = ""

    async def _handle_client(self) -> None:
        self.relay.live.add(self)
        struck = True  # also when cancelled during the fault: aiosmtpd would close it
        try:
            struck = await self.relay.strike(self, "greeting")
            if not struck:
                await super()._handle_client()
        finally:
            self.relay.live.discard(self)
            if struck and self.transport is not None:
                self.transport.close()

    async def smtp_EHLO(self, hostname: str) -> None:
        # Only the first EHLO: the one after STARTTLS is the same command again.
        before_tls = self.session is not None and self.session.ssl is None
        if before_tls and await self.relay.strike(self, "ehlo"):
            # A client falls back to HELO, which a relay failing EHLO fails alike; aiosmtpd
            # would say 530 (STARTTLS first), as no relay does to HELO.
            if self.relay.fault.isdigit():
                self.helo_reply = reply_for("ehlo", self.relay.fault)
            return
        await super().smtp_EHLO(hostname)

    async def push(self, status: str) -> None:  # type: ignore[override]
        if self.helo_reply and status.startswith("530 "):
            status = self.helo_reply
        await super().push(status)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if not await self.relay.strike(self, "starttls"):
            await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        if not await self.relay.strike(self, "auth"):
            await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str) -> None:
        if not await self.relay.strike(self, "mail"):
            await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str) -> None:
        if not await self.relay.strike(self, "rcpt"):
            await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if not await self.relay.strike(self, "data"):
            await super().smtp_DATA(arg)


@asynccontextmanager
async def scripted_relay(tmp_path: Path, *, pipelining: bool) -> AsyncIterator[ScriptedRelay]:
    """The relay on loopback, demanding STARTTLS then AUTH."""
    server_context, ca_file = certificates(tmp_path)
    relay = ScriptedRelay(pipelining=pipelining, ca_file=ca_file)
    accounts = Accounts("notifyd", PASSWORD)

    def connection() -> SMTP:
        relay.connections += 1
        return ScriptedSMTP(
            relay,
            hostname="relay.test",
            tls_context=server_context,
            require_starttls=True,
            auth_required=True,
            authenticator=accounts,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(connection, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    try:
        yield relay
    finally:
        server.close()
        await relay.hang_up()
        await server.wait_closed()


def matrix_config(
    tmp_path: Path, database_url: str, relay: ScriptedRelay
) -> dict[str, dict[str, Any]]:
    return base_config(
        tmp_path,
        database_url,
        relay.port,
        smtp={
            "security": "starttls",
            "username": "notifyd",
            "password": PASSWORD,
            "ca_file": str(relay.ca_file),
            "timeout_seconds": TIMEOUT,
        },
        delivery={
            "poll_seconds": 0.2,
            "retry_initial_seconds": 0.5,
            "retry_max_seconds": 0.5,
            "breaker_cooldown_seconds": 0.3,
        },
    )


@asynccontextmanager
async def matrix_daemon(
    tmp_path: Path, database_url: str, relay: ScriptedRelay
) -> AsyncIterator[Running]:
    settings = load_config(tmp_path, matrix_config(tmp_path, database_url, relay))
    async with running_daemon(settings) as daemon:
        yield daemon


async def run_cell(
    daemon: Running, relay: ScriptedRelay, db: asyncpg.Connection, stage: str, fault: str, n: int
) -> str | None:
    """One cell: arm the fault, post an event, check the notice while the fault lasts and
    once it is gone. Returns what went wrong, or None."""
    want = expected(stage, fault)
    address = f"cell{n}@client{n}.example"
    dispatcher = daemon.daemon.dispatcher
    assert dispatcher is not None
    trips = dispatcher.breaker.trips
    await relay.hang_up()
    relay.arm(stage, fault)
    event = sample_event("account.created", f"acc-{n}", email=address)
    status, body = await daemon.post("billing", event, BILLING_SECRET)
    assert status == 202, body

    async def notice() -> asyncpg.Record:
        row = await db.fetchrow("SELECT * FROM notices WHERE recipient = $1", address)
        assert row is not None
        return row

    async def during() -> asyncpg.Record | None:
        row = await notice()
        if row["last_error"] is None or row["state"] == "sending":
            return None
        if want.state == "failed":
            return row if row["state"] == "failed" else None
        # Waiting for its back-off (or the breaker's pause), with the reason on file.
        return row if row["state"] == "queued" else None

    try:
        seen = await eventually(during, f"{stage} {fault}: the fault recorded", CELL_WAIT)
        assert seen is not None
    except AssertionError as error:
        relay.disarm()
        return str(error)
    problems = []
    if not seen["last_error"].startswith(want.reasons):
        problems.append(f"reason {seen['last_error']!r}, expected {want.reasons}")
    if want.state != "failed" and seen["due_at"] <= seen["created_at"]:
        problems.append("retried without a back-off")
    if want.state == "paused" and not dispatcher.breaker.is_open:
        problems.append("the breaker did not open")
    relay.disarm()
    before = sum(1 for _, rcpts in relay.envelopes if address in rcpts)

    async def settled() -> asyncpg.Record | None:
        row = await notice()
        return (
            row if row["state"] in ("sent", "failed") and not dispatcher.breaker.is_open else None
        )

    try:
        final = await eventually(settled, f"{stage} {fault}: the notice settled", CELL_WAIT)
        assert final is not None
    except AssertionError as error:
        return "; ".join([*problems, str(error)])
    delivered = sum(1 for _, rcpts in relay.envelopes if address in rcpts)
    if want.state == "failed":
        if final["state"] != "failed" or delivered:
            problems.append(f"ended {final['state']} with {delivered} delivered, expected failed")
        # The relay goes on: the next notice is sent.
        follow = f"next{n}@client{n}.example"
        event = sample_event("account.created", f"acc-next-{n}", email=follow)
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202

        async def followed() -> bool:
            return any(follow in rcpts for _, rcpts in relay.envelopes)

        try:
            await eventually(followed, f"{stage} {fault}: the next notice sent", CELL_WAIT)
        except AssertionError as error:
            problems.append(str(error))
    elif final["state"] != "sent" or delivered - before > 1 or delivered != 1:
        problems.append(f"ended {final['state']}, delivered {delivered} times, expected once")
    bounces = await db.fetchval(
        "SELECT coalesce(sum(hard_bounces), 0) FROM address_health WHERE address = $1", address
    )
    if bool(bounces) != want.bounce:
        problems.append(f"{bounces} hard bounces recorded, expected {int(want.bounce)}")
    if dispatcher.breaker.trips - trips != want.trips:
        problems.append(f"breaker tripped {dispatcher.breaker.trips - trips} times")
    if problems:
        return f"{stage} {fault}: " + "; ".join(problems)
    return None
