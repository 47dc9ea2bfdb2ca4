"""A storm of missed calls does not become a storm of emails (SPEC §5): the first call is
sent at once, the rest of the burst in one follow-up email; past the hourly cap the
surplus waits for the hourly digest instead of being dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from notifyd.jobs import flush_digests
from tests.conftest import BILLING_SECRET, PBX_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config
from tests.integration.queue_support import settled_notices

FREQUENT = "+40721555123"


async def test_a_burst_of_missed_calls_gives_one_email_then_one_follow_up(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["calls"] = {"burst_window_seconds": 120}
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        created = sample_event("account.created", "acc-1", language="en")
        await daemon.post("billing", created, BILLING_SECRET)
        await smtp_sink.wait_for(1)
        callers = [FREQUENT, "+40745000111", FREQUENT, FREQUENT, "+40745000222", FREQUENT]
        for n, caller in enumerate(callers):
            event = sample_event("call.missed", "acc-1", call_id=f"c-{n}", caller_number=caller)
            assert (await daemon.post("pbx", event, PBX_SECRET))[0] == 202
        await smtp_sink.wait_for(2)
        # Nothing left to send but what the burst holds for its follow-up.
        await settled_notices(db)
        before_window = len(smtp_sink.messages)
        held = await db.fetch(
            "SELECT due_at, reasons FROM notices WHERE state = 'held' AND digest = 'burst'"
        )
        assert daemon.daemon.database is not None
        # The end of the window: the digest job gathers the burst (called here, not waited for).
        flushed = await flush_digests(
            daemon.daemon.database.pool,
            datetime.now(UTC) + timedelta(seconds=121),
            "voip.example",
            daemon.daemon.dispatcher.wake if daemon.daemon.dispatcher else lambda: None,
        )
        messages = await smtp_sink.wait_for(3)
        states = [row["state"] for row in await settled_notices(db)]
    assert before_window == 2  # the welcome and the first call
    assert len(held) == 5
    assert len({row["due_at"] for row in held}) == 1  # one follow-up for the whole burst
    assert any("burst" in reason for reason in held[0]["reasons"])
    assert flushed == (1, 5)
    # The welcome, the first call, the five it gathered and the follow-up.
    assert states == ["sent", "sent"] + ["digested"] * 5 + ["sent"]
    assert len(smtp_sink.messages) == 3
    follow_up = messages[2]
    text = follow_up.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert follow_up["Subject"] == "Since our last email: 5 missed calls"
    assert "3 from +40 721 555 123" in text
    assert text.count("missed call from") == 5


async def test_past_the_hourly_cap_notices_wait_for_the_hourly_digest(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["delivery"]["hourly_cap"] = 2
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        created = sample_event("account.created", "acc-1", language="en")
        await daemon.post("billing", created, BILLING_SECRET)
        await smtp_sink.wait_for(1)
        for n in range(5):
            event = sample_event("fax.sent", "acc-1", remote_number=f"+4021555010{n}")
            assert (await daemon.post("pbx", event, PBX_SECRET))[0] == 202
        await smtp_sink.wait_for(3)
        await settled_notices(db)  # nothing left to send but what the cap holds
        capped = await db.fetch("SELECT due_at FROM notices WHERE state = 'held'")
        assert daemon.daemon.database is not None
        flushed = await flush_digests(
            daemon.daemon.database.pool,
            datetime.now(UTC) + timedelta(hours=1, minutes=1),
            "voip.example",
            lambda: None,
        )
        messages = await smtp_sink.wait_for(4)
        states = [row["state"] for row in await settled_notices(db)]
    assert states == ["sent"] * 3 + ["digested"] * 3 + ["sent"]
    assert len(capped) == 3  # nothing dropped: the surplus waits
    assert all(row["due_at"].minute == 0 for row in capped)  # at the next full hour
    assert flushed == (1, 3)
    assert len(smtp_sink.messages) == 4
    assert messages[3]["Subject"] == "Hourly digest: 3 faxes sent"
