"""SMTP PIPELINING (RFC 2920, issue 6): with a relay that offers it, MAIL, RCPT and DATA go
in one write and every outcome is the same as without it. Against a real aiosmtpd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifyd.mail.pipelined import wire_message
from notifyd.mail.transport import SmtpRelay, Verdict
from notifyd.settings import SmtpSettings
from tests.conftest import SmtpSink, smtp_server

SENDER = "notifyd@voip.example"


def message(n: int) -> bytes:
    return (
        f"From: notifyd <{SENDER}>\r\nTo: user{n}@client.example\r\n"
        f"Subject: Notice {n}\r\nMessage-ID: <n{n}@voip.example>\r\n\r\n"
        ".a line that starts with a dot\r\nand the end.\r\n"
    ).encode()


@pytest.fixture(params=[True, False], ids=["pipelining", "without"])
async def sink(request: pytest.FixtureRequest) -> AsyncIterator[SmtpSink]:
    async with smtp_server(SmtpSink(pipelining=request.param)) as served:
        yield served


def relay_for(sink: SmtpSink, timeout: float = 10.0) -> SmtpRelay:
    # One connection: messages sent at once queue for it, as notifyd's 32 sends in
    # flight queue for its 4.
    return SmtpRelay(
        SmtpSettings(host="127.0.0.1", port=sink.port, timeout_seconds=timeout, pool_size=1)
    )


async def send(relay: SmtpRelay, n: int) -> tuple[Verdict, str, bool, bool]:
    outcome = await relay.send(message(n), SENDER, f"user{n}@client.example", f"<n{n}@v>")
    return outcome.verdict, outcome.error_kind or "", outcome.bounce, outcome.possibly_sent


async def test_messages_arrive_whole_over_one_reused_connection(sink: SmtpSink) -> None:
    relay = relay_for(sink)
    try:
        outcomes = [await send(relay, n) for n in range(5)]
    finally:
        await relay.close()
    assert outcomes == [(Verdict.SENT, "", False, False)] * 5
    received = await sink.wait_for(5)
    assert [m["Subject"] for m in received] == [f"Notice {n}" for n in range(5)]
    body = received[0].get_content()
    assert body.splitlines()[0] == ".a line that starts with a dot"  # the doubled dot undone
    assert sink.envelopes[0] == (SENDER, ["user0@client.example"])
    assert sink.connections == 1
    assert sink.pipelined_mails == (5 if sink.pipelining else 0)


async def test_refusals_mean_the_same_and_the_connection_goes_on(sink: SmtpSink) -> None:
    sink.rcpt_replies.extend(["550 5.1.1 no such user", "451 4.3.0 try later"])
    sink.data_replies.extend(["554 5.7.1 rejected as spam"])
    relay = relay_for(sink)
    try:
        outcomes = [await send(relay, n) for n in range(4)]
    finally:
        await relay.close()
    assert outcomes == [
        (Verdict.FAILED, "5xx", True, False),  # a refused address: a hard bounce
        (Verdict.RETRY, "4xx", False, False),
        (Verdict.FAILED, "5xx", False, False),  # a refused message is not the address's
        (Verdict.SENT, "", False, False),
    ]
    assert [m["Subject"] for m in await sink.wait_for(1)] == ["Notice 3"]
    # Pipelined: reset after each refusal, never reconnected. aiosmtplib's path opens a new
    # connection after each refused RCPT, here two (as before pipelining existed).
    assert sink.connections == (1 if sink.pipelining else 3)


async def test_no_answer_to_the_final_dot_is_a_retry_that_may_be_a_duplicate(
    sink: SmtpSink,
) -> None:
    sink.data_delay = 3.0
    relay = relay_for(sink, timeout=0.5)
    try:
        verdict, kind, _bounce, possibly_sent = await send(relay, 1)
    finally:
        await relay.close()
    assert (verdict, kind, possibly_sent) == (Verdict.RETRY, "timeout", True)


async def test_a_relay_that_went_away_is_reconnected_for_the_next_message(
    sink: SmtpSink,
) -> None:
    relay = relay_for(sink)
    try:
        assert (await send(relay, 1))[0] is Verdict.SENT
        async with smtp_server(SmtpSink(pipelining=sink.pipelining)) as second:
            # The first relay's connection is idle in the pool; point the relay at a new one.
            relay.settings = SmtpSettings(host="127.0.0.1", port=second.port, pool_size=1)
            idle, settling = relay._idle.get_nowait()
            idle.close()
            relay._idle.put_nowait((idle, settling))
            assert (await send(relay, 2))[0] is Verdict.SENT
            assert [m["Subject"] for m in await second.wait_for(1)] == ["Notice 2"]
    finally:
        await relay.close()


def test_the_wire_form_ends_lines_with_crlf_and_doubles_leading_dots() -> None:
    assert wire_message(b"a\n.b\r\n..c\rd") == b"a\r\n..b\r\n...c\r\nd\r\n.\r\n"
    assert wire_message(b"x\r\n") == b"x\r\n.\r\n"
    # Already CRLF (what `mime.compose` writes): only the dots change.
    assert wire_message(b".a\r\nb\r\n.\r\nc") == b"..a\r\nb\r\n..\r\nc\r\n.\r\n"
    assert wire_message(b"a\r\n\r\nb\r\n") == b"a\r\n\r\nb\r\n.\r\n"


async def test_the_next_message_follows_the_final_dot_without_waiting_for_its_reply(
    sink: SmtpSink,
) -> None:
    sink.data_delay = 0.05  # the relay takes a moment over each message
    sink.data_replies.extend(["250 ok", "554 5.7.1 rejected as spam"])
    relay = relay_for(sink)
    try:
        outcomes = await asyncio.gather(*(send(relay, n) for n in range(6)))
    finally:
        await relay.close()
    assert outcomes[1] == (Verdict.FAILED, "5xx", False, False)
    assert outcomes[:1] + outcomes[2:] == [(Verdict.SENT, "", False, False)] * 5
    received = await sink.wait_for(5)
    assert sorted(m["Subject"] for m in received) == [f"Notice {n}" for n in (0, 2, 3, 4, 5)]
    assert sink.connections == 1
    # Pipelined, each message but the last had the next one's MAIL behind it, refused or
    # not; aiosmtplib's path waits for each reply before the next command.
    assert sink.overlapped == (5 if sink.pipelining else 0)


async def test_the_next_message_is_not_accepted_until_the_last_outcome_is_recorded(
    sink: SmtpSink,
) -> None:
    """`sending`: the dispatcher records inside the block. Until it leaves, the connection's
    next message may be written but not accepted, so a crash duplicates one at most."""
    relay = relay_for(sink)
    try:
        async with relay.sending(message(1), SENDER, "user1@client.example", "<n1@v>") as first:
            assert first.verdict is Verdict.SENT
            second = asyncio.create_task(send(relay, 2))
            # That nothing happens is what this tests, and no database or reply can say
            # "not yet": the time a wrongly released second message would need to be
            # accepted, a loopback round trip or four.
            await asyncio.sleep(0.3)
            assert [m["Subject"] for m in sink.messages] == ["Notice 1"]
            assert not second.done()
        assert await asyncio.wait_for(second, 10) == (Verdict.SENT, "", False, False)
    finally:
        await relay.close()
    assert [m["Subject"] for m in await sink.wait_for(2)] == ["Notice 1", "Notice 2"]
    assert sink.connections == 1


class DroppingSink(SmtpSink):
    """Hangs up instead of answering the first message's final dot."""

    dropped: bool = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.dropped:
            self.dropped = True
            assert server.transport is not None
            server.transport.close()
            return "250 never read"
        return await super().handle_DATA(server, session, envelope)


async def test_a_message_queued_behind_a_lost_one_goes_on_a_new_connection() -> None:
    async with smtp_server(DroppingSink(pipelining=True)) as sink:
        relay = relay_for(sink)
        try:
            first, second = await asyncio.gather(send(relay, 1), send(relay, 2))
        finally:
            await relay.close()
        # The first may have been taken: a retry, counted as a possible duplicate. The
        # second had not been sent whole: sent again on a new connection, no duplicate.
        assert first == (Verdict.RETRY, "connection", False, True)
        assert second == (Verdict.SENT, "", False, False)
        assert [m["Subject"] for m in await sink.wait_for(1)] == ["Notice 2"]
        assert sink.connections == 2


def test_pipelining_on_uvloop_the_daemons_event_loop() -> None:
    """`notifyd run` uses uvloop when installed: its transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")

    async def two_messages() -> tuple[list[Verdict], int]:
        async with smtp_server(SmtpSink(pipelining=True)) as served:
            relay = relay_for(served)
            try:
                verdicts = [(await send(relay, n))[0] for n in range(2)]
            finally:
                await relay.close()
            await served.wait_for(2)
            return verdicts, served.pipelined_mails

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(two_messages()) == ([Verdict.SENT] * 2, 2)
    finally:
        loop.close()
