"""Values as switches and billing systems really send them, end to end (SPEC §4). A
dialplan or a template writes every field it has, so what it does not know arrives as ""
or null (Asterisk's empty CALLERID(name), a voicemail without a transcript, a payment
without an invoice number). Such a field is absent, not refused: a PBX does not retry a
4xx, so a missed call or voicemail refused for an empty name is lost. A caller's name longer
than notifyd keeps is shortened, not refused, for the same reason, and the PBX's numbered
identifiers written unquoted by a dialplan (an extension, a mailbox, a call id) are read as
the digits they are, as caller numbers are. A time at the ends of the calendar (Go's zero
time) is shown as sent where the subscriber's zone cannot hold it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from notifyd.catalogue.events import CATALOGUE
from notifyd.catalogue.samples import sample_event
from tests.conftest import running_daemon
from tests.integration.catalogue_support import (
    RawSink,
    mail_number,
    post_ok,
    sending_settings,
)

# (event type, the optional fields the sender wrote blank or null)
BLANKS: list[tuple[str, dict[str, Any]]] = [
    ("call.missed", {"caller_name": "", "extension": "", "ring_seconds": None}),
    ("call.missed", {"caller_name": "   ", "to_voicemail": None}),
    ("voicemail.received", {"call_id": "", "caller_name": "", "transcript": ""}),
    ("fax.failed", {"reason": ""}),
    ("account.password_changed", {"source_ip": "", "user_agent": " "}),
    ("account.password_reset_requested", {"source_ip": None}),
    ("account.ip_allowlist_changed", {"changed_by": "", "source_ip": ""}),
    ("billing.credit_added", {"method": ""}),
    ("billing.payment_confirmed", {"invoice_number": ""}),
]


async def test_blank_optional_fields_are_absent_and_the_notice_is_sent(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", "acc-1", language="en"))
        await mail_number(sink, 1)
        for n, (event_type, blanks) in enumerate(BLANKS):
            event = sample_event(event_type, "acc-1", **blanks)
            event_id = await post_ok(daemon, event)
            mail = await mail_number(sink, n + 2)
            stored = await db.fetchval("SELECT data FROM events WHERE id = $1", event_id)
            # Stored and shown as if the sender had left them out: each at its default.
            fields = CATALOGUE[event_type].model_fields
            defaults = {key: fields[key].default for key in blanks}
            assert {key: stored.get(key) for key in blanks} == defaults, event_type
            assert "None" not in mail.text, (event_type, mail.text)


async def test_a_caller_name_longer_than_kept_is_shortened_not_refused(
    tmp_path: Path, database_url: str, sink: RawSink
) -> None:
    # A SIP display name is whatever the caller's switch put in From: nothing bounds it.
    name = "Ștefan Țăranu " * 40
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", "acc-1", language="en"))
        await mail_number(sink, 1)
        await post_ok(daemon, sample_event("call.missed", "acc-1", caller_name=name))
        mail = await mail_number(sink, 2)
    shown = name[:199].rstrip() + "…"
    assert shown in mail.text


async def test_extensions_mailboxes_and_call_ids_written_as_json_integers_are_taken(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    # `"extension": ${EXTEN}` in a dialplan's JSON template is a number, not a string.
    missed = sample_event("call.missed", "acc-1", extension=101, call_id=1763800042)
    voicemail = sample_event("voicemail.received", "acc-1", mailbox=101, call_id=1763800043)
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", "acc-1", language="en"))
        await mail_number(sink, 1)
        missed_id = await post_ok(daemon, missed)
        await mail_number(sink, 2)
        voicemail_id = await post_ok(daemon, voicemail)
        await mail_number(sink, 3)
    stored = {
        row["id"]: row["data"]
        for row in await db.fetch("SELECT id, data FROM events WHERE type <> 'account.created'")
    }
    assert {k: stored[UUID(missed_id)][k] for k in ("extension", "call_id")} == {
        "extension": "101",
        "call_id": "1763800042",
    }
    assert {k: stored[UUID(voicemail_id)][k] for k in ("mailbox", "call_id")} == {
        "mailbox": "101",
        "call_id": "1763800043",
    }


@pytest.mark.parametrize(
    ("zone", "started_at", "shown"),
    [
        # Go's zero time.Time, what a Go switch or billing writes for a time it never set:
        # west of UTC it falls before year 1.
        ("America/New_York", "0001-01-01T00:00:00Z", "1 January 1, 00:00 (UTC)"),
        # A "never" sentinel: east of UTC it falls after year 9999.
        ("Asia/Tokyo", "9999-12-31T23:59:59Z", "31 December 9999, 23:59 (UTC)"),
    ],
)
async def test_a_time_at_the_ends_of_the_calendar_is_shown_in_utc_not_lost(
    tmp_path: Path, database_url: str, sink: RawSink, zone: str, started_at: str, shown: str
) -> None:
    # Accepted with a 202, the notice used to fail in rendering (OverflowError turning it
    # into the subscriber's zone): a missed call committed and never emailed.
    welcome = sample_event("account.created", "acc-1", language="en", timezone=zone)
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, welcome)
        await mail_number(sink, 1)
        await post_ok(daemon, sample_event("call.missed", "acc-1", started_at=started_at))
        mail = await mail_number(sink, 2)
    assert shown in mail.text
