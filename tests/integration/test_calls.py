"""One call, one email (SPEC §5), end to end: legs of one call, a missed call that went to
voicemail and its voicemail, and the window a missed call waits for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from notifyd.settings import Settings
from tests.conftest import (
    PBX_SECRET,
    WAIT,
    running_daemon,
)
from tests.integration.catalogue_support import (
    RawSink,
    check_mail,
    mail_number,
    post_ok,
    sending_settings,
)
from tests.integration.queue_support import kinds_and_states

ACCOUNT = "acc-calls"
WINDOW = 1.0  # [calls] voicemail_wait_seconds
# For a voicemail that must arrive within the window: on a loaded machine the two posts
# can be more than a second apart, and the missed call would rightly go out alone.
LONG_WINDOW = 60.0
STARTED = "2026-11-20T08:15:00+00:00"  # 10:15 in Bucharest


def settings_for(
    tmp_path: Path, database_url: str, sink: RawSink, window: float = WINDOW
) -> Settings:
    return sending_settings(tmp_path, database_url, sink, calls={"voicemail_wait_seconds": window})


async def test_three_legs_of_one_call_give_one_email(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    legs = [
        sample_event(
            "call.missed",
            ACCOUNT,
            call_id="1763800000.77",
            extension=extension,
            called_number=number,
            started_at=STARTED,
        )
        for extension, number in (
            ("101", "+40215550101"),
            ("102", "+40215550102"),
            ("103", "+40215550103"),
        )
    ]
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        # A ring group: the legs arrive together, each with its own webhook id.
        answers = await asyncio.gather(
            *(
                daemon.post("pbx", leg, PBX_SECRET, webhook_id=f"msg_leg_{number}")
                for number, leg in enumerate(legs)
            )
        )
        missed = await mail_number(sink, 2)
        # Every leg's notices were committed before its 202; once none is left to send,
        # what the sink has is all there will be.
        states = await kinds_and_states(db)
    assert [status for status, _ in answers] == [202, 202, 202]
    assert len({body["event_id"] for _, body in answers}) == 3
    assert states == [("account.created", "sent"), ("call.missed", "sent")]
    assert len(sink.messages) == 2
    assert "nepreluat" in missed.subject
    assert await db.fetchval("SELECT count(*) FROM events WHERE type = 'call.missed'") == 3


async def test_missed_call_then_its_voicemail_give_one_email_the_voicemail(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink, window=LONG_WINDOW)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(
            daemon,
            sample_event(
                "call.missed",
                ACCOUNT,
                call_id="1763800000.88",
                to_voicemail=True,
                called_number="+40215550100",
                extension="101",
                started_at=STARTED,
                ring_seconds=20,
            ),
        )
        await post_ok(
            daemon,
            sample_event(
                "voicemail.received", ACCOUNT, call_id="1763800000.88", caller_name="Ion Ionescu"
            ),
        )
        mail = await mail_number(sink, 2)
        # The missed-call notice, folded in, is 'merged': no claim takes it, so it never
        # goes out by itself. Not folded in, it would still be queued for the end of the
        # window, and this would time out.
        states = await kinds_and_states(db)
    assert states == [
        ("account.created", "sent"),
        ("call.missed", "merged"),
        ("voicemail.received", "sent"),
    ]
    assert len(sink.messages) == 2
    assert "Apel nepreluat și mesaj vocal de la Ion Ionescu" in mail.subject
    assert "nepreluat" in mail.text
    assert "Apel nepreluat: 20 noiembrie 2026, 10:15" in mail.text
    assert "interior 101" in mail.text
    assert "nepreluat" in mail.html_text
    files = [(part.get_content_type(), part.get_filename() or "") for part in mail.attachments]
    assert len(files) == 1
    assert files[0][0] == "audio/wav"
    assert files[0][1].endswith(".wav")


async def test_missed_call_to_voicemail_without_voicemail_goes_after_the_window(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    loop = asyncio.get_running_loop()
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        posted = loop.time()
        await post_ok(
            daemon,
            sample_event("call.missed", ACCOUNT, call_id="1763800000.99", to_voicemail=True),
        )
        # The window is what this tests: well inside it, the missed call has not gone out.
        await asyncio.sleep(max(posted + WINDOW * 0.7 - loop.time(), 0))
        early = len(sink.messages)
        await sink.wait_for(2, timeout=WINDOW + WAIT / 3)
        arrived = loop.time() - posted
        mail = check_mail(sink.raws[1])
        states = await kinds_and_states(db)
    assert early == 1, "the missed call went out before its voicemail window ended"
    assert arrived >= WINDOW * 0.95
    assert arrived < WINDOW + 3
    assert "Apel nepreluat" in mail.subject
    assert states == [("account.created", "sent"), ("call.missed", "sent")]
    assert len(sink.messages) == 2


async def test_voicemail_first_then_its_missed_call_give_one_email(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        await post_ok(daemon, sample_event("voicemail.received", ACCOUNT, call_id="1763800000.111"))
        voicemail = await mail_number(sink, 2)
        for to_voicemail in (True, False):
            await post_ok(
                daemon,
                sample_event(
                    "call.missed",
                    ACCOUNT,
                    call_id="1763800000.111",
                    to_voicemail=to_voicemail,
                ),
            )
        # A missed call queued after all would wait out the window, then go: this waits
        # for that too.
        states = await kinds_and_states(db)
    assert states == [("account.created", "sent"), ("voicemail.received", "sent")]
    assert len(sink.messages) == 2
    assert "Mesaj vocal nou" in voicemail.subject
