"""Caller IDs as a PBX sends them, end to end (SPEC §4): each class of value posted as a
signed webhook is accepted and reaches the subscriber, withheld ones as "Număr ascuns" /
"Withheld number", the rest as given; one call is still one email, and bursts and digests
still gather them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from notifyd.catalogue.samples import sample_event
from notifyd.jobs import flush_digests
from tests.conftest import Running, running_daemon
from tests.integration.catalogue_support import (
    Mail,
    RawSink,
    mail_number,
    post_ok,
    sending_settings,
)
from tests.integration.queue_support import kinds_and_states

WITHHELD = {"ro": "Număr ascuns", "en": "Withheld number"}
STARTED = "2026-11-20T08:15:00+00:00"
# (as the PBX sends it, as the subscriber reads it; None: withheld, in their language)
CLASSES: list[tuple[Any, str | None]] = [
    ("anonymous", None),
    ("Anonymous", None),
    ("Restricted", None),
    ("unknown", None),
    ("", None),
    (None, None),
    ("sip:anonymous@anonymous.invalid", None),
    ("RECEPTIE Ion", "RECEPTIE Ion"),
    ("sip:101@pbx.example.com", "sip:101@pbx.example.com"),
    ("*86#", "*86#"),
    ("#31#0721555123", "#31#0721555123"),
    ("+40 (21) 555-0100", "+40 21 555 0100"),
]


async def welcomed(daemon: Running, sink: RawSink, account: str, language: str) -> None:
    count = len(sink.raws)
    await post_ok(daemon, sample_event("account.created", account, language=language))
    await mail_number(sink, count + 1)


def expected(shown: str | None, language: str) -> str:
    return WITHHELD[language] if shown is None else shown


def assert_shows(mail: Mail, shown: str) -> None:
    # The subject says it in a sentence: "from a withheld number", "de la număr ascuns".
    assert shown.lower() in mail.subject.lower()
    assert shown in mail.text
    assert shown in mail.html_text


@pytest.mark.parametrize("language", ["ro", "en"])
async def test_every_class_of_caller_id_reaches_the_subscriber(
    tmp_path: Path, database_url: str, sink: RawSink, language: str
) -> None:
    account = f"acc-{language}"
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
            await welcomed(daemon, sink, account, language)
            for n, (value, shown) in enumerate(CLASSES):
                event = sample_event(
                    "call.missed", account, call_id=f"1763800000.{n}", caller_number=value
                )
                event["data"].pop("caller_name")
                await post_ok(daemon, event)
                mail = await mail_number(sink, n + 2)
                assert_shows(mail, expected(shown, language))
    # No caller ID is ever logged, masked or not (the masker knows numbers, not names).
    logged = "\n".join(str(entry) for entry in logs)
    for value, _ in CLASSES:
        if value and len(value) > 3:
            assert value not in logged


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("voicemail.received", "caller_number"),
        ("fax.received", "remote_number"),
        ("fax.sent", "remote_number"),
        ("fax.failed", "remote_number"),
    ],
)
async def test_voicemails_and_faxes_take_every_class_of_caller_id(
    tmp_path: Path, database_url: str, sink: RawSink, kind: str, field: str
) -> None:
    chosen = [CLASSES[0], CLASSES[4], CLASSES[5], CLASSES[8], CLASSES[9]]
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await welcomed(daemon, sink, "acc-1", "en")
        for n, (value, shown) in enumerate(chosen):
            event = sample_event(kind, "acc-1", **{field: value})
            event["data"].pop("caller_name", None)
            await post_ok(daemon, event)
            mail = await mail_number(sink, n + 2)
            assert_shows(mail, expected(shown, "en"))


async def test_legs_of_a_withheld_call_give_one_email(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await welcomed(daemon, sink, "acc-1", "ro")
        legs = [
            sample_event(
                "call.missed",
                "acc-1",
                call_id="1763800000.77",
                caller_number="anonymous",
                caller_name="Anonymous",
                extension=extension,
                called_number=extension,
            )
            for extension in ("101", "102", "sip:103@pbx.example.com")
        ]
        for leg in legs:
            await post_ok(daemon, leg)
        mail = await mail_number(sink, 2)
        # Each leg's notices were committed before its 202: once none is left to send,
        # the sink has all there will be.
        states = await kinds_and_states(db)
    assert states == [("account.created", "sent"), ("call.missed", "sent")]
    assert len(sink.raws) == 2
    assert "Număr ascuns" in mail.text


async def test_a_withheld_missed_call_and_its_voicemail_give_one_email(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = sending_settings(tmp_path, database_url, sink, calls={"voicemail_wait_seconds": 5})
    async with running_daemon(settings) as daemon:
        await welcomed(daemon, sink, "acc-1", "en")
        missed = sample_event(
            "call.missed",
            "acc-1",
            call_id="1763800000.88",
            caller_number="",
            to_voicemail=True,
            called_number="sip:sales@pbx.example.com",
            started_at=STARTED,
        )
        missed["data"].pop("caller_name")
        voicemail = sample_event(
            "voicemail.received", "acc-1", call_id="1763800000.88", caller_number=""
        )
        voicemail["data"].pop("caller_name")
        await post_ok(daemon, missed)
        await post_ok(daemon, voicemail)
        mail = await mail_number(sink, 2)
        # Not folded in, the missed call would wait out its window, then go: this waits
        # for that too.
        states = await kinds_and_states(db)
    assert states == [
        ("account.created", "sent"),
        ("call.missed", "merged"),
        ("voicemail.received", "sent"),
    ]
    assert len(sink.raws) == 2
    assert mail.subject == (
        "Missed call and voicemail from a withheld number on sip:sales@pbx.example.com"
    )
    assert "sip:sales@pbx.example.com" in mail.html_text


async def test_a_burst_of_withheld_and_named_callers_gives_one_follow_up(
    tmp_path: Path, database_url: str, sink: RawSink
) -> None:
    settings = sending_settings(tmp_path, database_url, sink, calls={"burst_window_seconds": 120})
    callers: list[str | None] = ["anonymous", "sip:101@pbx.example.com", "", "Restricted"]
    callers += ["sip:101@pbx.example.com", None]
    async with running_daemon(settings) as daemon:
        await welcomed(daemon, sink, "acc-1", "en")
        for n, caller in enumerate(callers):
            event = sample_event("call.missed", "acc-1", call_id=f"c-{n}", caller_number=caller)
            event["data"].pop("caller_name")
            await post_ok(daemon, event)
        first = await mail_number(sink, 2)
        assert daemon.daemon.database is not None
        # The end of the window: the digest job gathers the burst (called here, not waited for).
        flushed = await flush_digests(
            daemon.daemon.database.pool,
            datetime.now(UTC) + timedelta(seconds=121),
            "voip.example",
            daemon.daemon.dispatcher.wake if daemon.daemon.dispatcher else lambda: None,
        )
        follow_up = await mail_number(sink, 3)
    assert "from a withheld number" in first.subject
    assert flushed == (1, 5)
    assert follow_up.subject == "Since our last email: 5 missed calls"
    # Four callers who withheld their number are not one caller heard from four times.
    assert "2 from sip:101@pbx.example.com." in follow_up.text
    assert follow_up.text.count("from a withheld number") == 3  # its three lines, no total
    assert follow_up.text.count("missed call from sip:101@pbx.example.com") == 2
    assert "sip:101@pbx.example.com" in follow_up.html_text
