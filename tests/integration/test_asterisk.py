"""The Asterisk hooks of contrib/asterisk, run as Asterisk runs them against a real notifyd:
the hangup handler's AGI script with Asterisk's side of the session (the doc's dialplan
walked for a ring group, a call to voicemail, a withheld caller, an answered call, a
stopped notifyd) and the voicemail mailcmd fed the email app_voicemail writes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event, sample_wav
from notifyd.settings import Settings
from tests.conftest import running_daemon
from tests.integration.asterisk_support import (
    Agi,
    Voicemail,
    agi_command,
    asterisk_snippet,
    conf_value,
    environment,
    mailcmd,
    run_agi,
    walk_inbound,
)
from tests.integration.catalogue_support import (
    RawSink,
    mail_number,
    post_ok,
    sending_settings,
)
from tests.integration.queue_support import kinds_and_states

ACCOUNT = "acc-1001"  # the doc's NOTIFYD_ACCOUNT
LINKEDID = "1772350200.41"
CALLER = "+40721000001"
# The call began half a minute ago: a notice of a call days old is not sent (its lifetime).
STARTED = int(time.time()) - 30


def settings_for(tmp_path: Path, database_url: str, sink: RawSink) -> Settings:
    # A window long enough that a missed call to voicemail waits for its voicemail here.
    return sending_settings(tmp_path, database_url, sink, calls={"voicemail_wait_seconds": 60})


def channel(status: str, presentation: str = "allowed_not_screened") -> dict[str, str]:
    """The caller's channel as Asterisk has it when the handler runs."""
    return {
        "EXTEN": "+40312000100",
        "EPOCH": str(STARTED),
        "CHANNEL(linkedid)": LINKEDID,
        "CALLERID(num)": CALLER,
        "CALLERID(name)": "Ion Ionescu",
        "CALLERID(num-pres)": presentation,
        "DIALSTATUS": status,
        "DIALEDTIME": "25" if status != "ANSWER" else "4",
    }


async def hang_up(base_url: str, tmp_path: Path, leg: str, state: dict[str, str]) -> Agi:
    """The doc's hangup handler for one channel (leg) of the call, after the doc's inbound
    context ran on it."""
    text = asterisk_snippet("asterisk-dialplan", base_url, tmp_path)
    variables, _ = walk_inbound(text, state)
    env = environment(f"PJSIP/trunk-0000{leg}", f"1772350200.{leg}", CALLER, "0312000100")
    ran = await run_agi(agi_command(text), env, variables)
    assert ran.code == 0, ran
    assert "Traceback" not in ran.err, ran.err
    return ran


async def missed_calls(db: asyncpg.Connection) -> list[dict[str, object]]:
    rows = await db.fetch("SELECT data FROM events WHERE type = 'call.missed'")
    return [dict(row["data"]) for row in rows]


async def test_a_ring_groups_two_legs_give_one_missed_call_under_the_linkedid(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(settings_for(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        # Both phones rang; the caller gave up (a NOANSWER would go on to voicemail).
        first = await hang_up(daemon.base_url, tmp_path, "41", channel("CANCEL"))
        await hang_up(daemon.base_url, tmp_path, "42", channel("CANCEL"))
        mail = await mail_number(sink, 2)
        states = await kinds_and_states(db)
    assert "DIALSTATUS" in first.asked
    assert "CHANNEL(linkedid)" in first.asked
    [stored] = await missed_calls(db)
    assert stored["call_id"] == LINKEDID
    assert stored["caller_number"] == CALLER
    assert stored["caller_name"] == "Ion Ionescu"
    assert stored["called_number"] == "+40312000100"
    assert stored["extension"] == "600"
    assert stored["ring_seconds"] == 25
    assert stored["to_voicemail"] is False
    started = datetime.fromisoformat(str(stored["started_at"]))
    assert started == datetime.fromtimestamp(STARTED, UTC)
    assert states == [("account.created", "sent"), ("call.missed", "sent")]
    assert "Missed call" in mail.subject or "nepreluat" in mail.subject
    assert len(sink.messages) == 2


async def test_a_call_to_voicemail_and_its_message_give_one_email_with_the_audio(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    audio = sample_wav(0.5)
    async with running_daemon(settings_for(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        text = asterisk_snippet("asterisk-dialplan", daemon.base_url, tmp_path)
        variables, reached = walk_inbound(text, channel("NOANSWER"))
        assert reached
        conf = asterisk_snippet("asterisk-voicemail", daemon.base_url, tmp_path)
        message = Voicemail("101", 0, CALLER, "Ion Ionescu", 7, variables["VM_CATEGORY"], audio)
        code, err = await mailcmd(conf, message.email(conf_value(conf, "emailbody")))
        assert code == 0, err
        await hang_up(daemon.base_url, tmp_path, "41", channel("NOANSWER"))
        mail = await mail_number(sink, 2)
        states = await kinds_and_states(db)
    [stored] = await missed_calls(db)
    assert stored["to_voicemail"] is True
    voicemail = await db.fetchval("SELECT data FROM events WHERE type = 'voicemail.received'")
    assert voicemail["call_id"] == LINKEDID
    assert voicemail["mailbox"] == "101"
    assert voicemail["duration_seconds"] == 7
    assert voicemail["caller_number"] == CALLER
    # The voicemail came first (mailcmd runs as the message is saved, before the hangup),
    # so the missed call of the same call_id, arriving after it, queued nothing.
    assert states == [("account.created", "sent"), ("voicemail.received", "sent")]
    [attached] = mail.attachments
    assert attached.get_filename() == "msg0000.wav"
    assert attached.get_payload(decode=True) == audio
    assert len(sink.messages) == 2


async def test_a_withheld_caller_is_sent_as_anonymous_and_the_number_goes_nowhere(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(settings_for(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        await hang_up(daemon.base_url, tmp_path, "41", channel("CANCEL", "prohib_not_screened"))
        await mail_number(sink, 2)
    [stored] = await missed_calls(db)
    assert stored["caller_number"] == "anonymous"
    assert stored.get("caller_name") is None
    assert stored["to_voicemail"] is False
    assert CALLER.encode() not in sink.raws[1]
    assert b"Ion Ionescu" not in sink.raws[1]


async def test_an_answered_call_posts_nothing(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(settings_for(tmp_path, database_url, sink)) as daemon:
        ran = await hang_up(daemon.base_url, tmp_path, "41", channel("ANSWER"))
    assert ran.asked  # it asked, and Asterisk answered
    assert await missed_calls(db) == []


async def test_a_stopped_notifyd_holds_the_hangup_no_longer_than_the_timeout(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(settings_for(tmp_path, database_url, sink)) as daemon:
        stopped = daemon.base_url
    ran = await hang_up(stopped, tmp_path, "41", channel("NOANSWER"))
    text = asterisk_snippet("asterisk-dialplan", stopped, tmp_path)
    assert "--timeout,3," in text
    assert ran.seconds < 3 + 3  # the doc's bound, and a process's start on a loaded machine
    assert "spooled" in ran.err
    [spooled] = list((tmp_path / "spool").glob("*.json"))
    record = json.loads(spooled.read_text())
    assert json.loads(record["body"])["data"]["call_id"] == LINKEDID


async def test_asterisks_default_voicemail_email_with_the_mailbox_map(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    audio = sample_wav(0.3)
    async with running_daemon(settings_for(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        conf = asterisk_snippet("asterisk-voicemail", daemon.base_url, tmp_path)
        message = Voicemail("101", 2, CALLER, "Ion Ionescu", 75, "", audio)
        code, err = await mailcmd(conf, message.email(None))
        assert code == 0, err
        mail = await mail_number(sink, 2)
    voicemail = await db.fetchval("SELECT data FROM events WHERE type = 'voicemail.received'")
    assert voicemail["duration_seconds"] == 75
    assert voicemail["caller_name"] == "Ion Ionescu"
    assert voicemail.get("call_id") is None  # Asterisk's own text does not carry it
    [attached] = mail.attachments
    assert attached.get_filename() == "msg0002.wav"
    assert attached.get_payload(decode=True) == audio
