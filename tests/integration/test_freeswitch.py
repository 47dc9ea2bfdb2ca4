"""contrib/freeswitch/ under the Debian Lua interpreter, against a real notifyd: the hooks
as FreeSWITCH runs them (freeswitch_standin.lua in place of mod_lua), configured and
installed as docs/integrations.md says, each running `notifyd send` for real."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event, sample_wav
from tests.conftest import BILLING_SECRET, Running, SmtpSink, running_daemon
from tests.integration.catalogue_support import sending_settings
from tests.integration.freeswitch_support import (
    A_LEG,
    STARTED,
    doc_script,
    leg,
    needs_lua,
    run_hook,
)

pytestmark = needs_lua
B_LEGS = ["0b1e0c1a-1111-4c1d-8e2f-000000000101", "0b1e0c1a-2222-4c1d-8e2f-000000000102"]
MISSED_HOOK = doc_script("freeswitch-dialplan", r"api_hangup_hook=lua (\S+\.lua)")
VOICEMAIL_HOOK = doc_script("freeswitch-voicemail-hook", r'script="(\S+\.lua)"')


async def subscriber(daemon: Running) -> None:
    created = sample_event("account.created", "acc-fs", email="acc-fs@client.example")
    assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202


async def stored(db: asyncpg.Connection, event_type: str) -> list[dict[str, object]]:
    rows = await db.fetch("SELECT data FROM events WHERE type = $1", event_type)
    return [dict(row["data"]) for row in rows]


async def test_a_ring_group_nobody_answered_is_one_missed_call_of_the_callers_leg(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    """The hook exported to every leg: the two phones' legs say nothing, the caller's leg
    posts one call.missed with its own uuid as call_id."""
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await subscriber(daemon)
        for uuid in [*B_LEGS, A_LEG]:
            await run_hook(tmp_path, daemon.base_url, MISSED_HOOK, "env", leg(uuid))
        await smtp_sink.wait_for(2)  # the welcome and the missed call
    [missed] = await stored(db, "call.missed")
    assert missed["call_id"] == A_LEG
    assert missed["caller_number"] == "+40721555123"
    assert missed["called_number"] == "+40215550100"
    assert missed["extension"] == "600"
    assert missed["ring_seconds"] == 25
    assert missed["to_voicemail"] is False
    assert missed["started_at"] == "2026-01-01T10:00:00Z"
    assert "Ion Ionescu" in str(smtp_sink.messages[1]["Subject"])


async def test_an_answered_call_and_an_outgoing_one_give_nothing(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    answered = {
        "originate_disposition": "SUCCESS",
        "bridge_uuid": B_LEGS[0],
        "answer_epoch": str(STARTED + 8),
        "billsec": "60",
        "hangup_cause": "NORMAL_CLEARING",
    }
    outgoing = {"call_direction": "outbound"}
    withheld = {"sip_h_Privacy": "id"}
    calls = [
        (A_LEG, answered),
        ("7a000000-0000-4000-8000-000000000001", outgoing),
        ("7a000000-0000-4000-8000-000000000002", withheld),
    ]
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await subscriber(daemon)
        for uuid, variables in calls:
            channel = leg(uuid, a_leg=uuid, **variables)
            await run_hook(tmp_path, daemon.base_url, MISSED_HOOK, "env", channel)
        await smtp_sink.wait_for(2)
    # Only the last, a missed call from a withheld number, reached notifyd.
    [missed] = await stored(db, "call.missed")
    assert missed["call_id"] == calls[2][0]
    assert missed["caller_number"] == "anonymous"
    assert missed.get("caller_name") is None


async def test_a_call_to_voicemail_is_one_email_with_the_recording(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    recording = tmp_path / "msg_6f1d2a8e.wav"
    recording.write_bytes(sample_wav())
    to_voicemail = {
        "answer_epoch": str(STARTED + 20),
        "billsec": "12",
        "last_app": "voicemail",
        "voicemail_message_len": "7",
        "hangup_cause": "NORMAL_CLEARING",
    }
    left = {
        "Event-Subclass": "vm::maintenance",
        "VM-Action": "leave-message",
        "VM-User": "101",
        "VM-Domain": "acc-fs.voip.example",
        "VM-Caller-ID-Name": "Ion Ionescu",
        "VM-Caller-ID-Number": "+40721555123",
        "VM-File-Path": str(recording),
        "VM-Message-Len": "7",
        "VM-Timestamp": str(STARTED + 32),
        "VM-UUID": "9c9c9c9c-0000-4000-8000-00000000aaaa",
        "variable_call_uuid": A_LEG,
        "variable_accountcode": "acc-fs",
    }
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await subscriber(daemon)
        await run_hook(tmp_path, daemon.base_url, MISSED_HOOK, "env", leg(A_LEG, **to_voicemail))
        await run_hook(tmp_path, daemon.base_url, VOICEMAIL_HOOK, "event", left)
        await smtp_sink.wait_for(2)
        [missed] = await stored(db, "call.missed")
        [voicemail] = await stored(db, "voicemail.received")
    assert missed["to_voicemail"] is True
    assert missed["ring_seconds"] == 20
    assert voicemail["call_id"] == A_LEG
    assert voicemail["mailbox"] == "101"
    assert voicemail["duration_seconds"] == 7
    # The missed call went into the voicemail's email: "missed call and voicemail from …".
    subject = str(smtp_sink.messages[1]["Subject"])
    assert "Apel nepreluat și mesaj vocal de la Ion Ionescu" in subject, subject
    parts = [p for p in smtp_sink.messages[1].walk() if p.get_filename() == recording.name]
    assert [p.get_payload(decode=True) for p in parts] == [sample_wav()]
