"""Lifetimes and the dead-letter view: a notice whose category's lifetime passed is failed
with the reason and the last SMTP reply, listed for the admin, and can be retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, PBX_SECRET, WAIT, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call


async def wait_state(db: asyncpg.Connection, kind: str, state: str) -> asyncpg.Record:
    async with asyncio.timeout(WAIT):
        while True:
            row = await db.fetchrow(
                "SELECT id, state, last_error, smtp_reply FROM notices WHERE kind = $1", kind
            )
            if row is not None and row["state"] == state:
                return row
            await asyncio.sleep(0.05)


async def test_a_missed_call_past_its_lifetime_is_a_dead_letter_and_can_be_retried(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["delivery"].update(retry_initial_seconds=0.2, retry_max_seconds=0.2)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        await smtp_sink.wait_for(1)
        # The relay keeps answering "try later"...
        smtp_sink.rcpt_replies.extend(["451 4.7.1 Greylisted, try again later"] * 1000)
        await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        async with asyncio.timeout(WAIT):
            while smtp_sink.rcpt_commands < 3:
                await asyncio.sleep(0.05)
        # ...until the call is a day old: time passes for the notice.
        await db.execute(
            "UPDATE notices SET created_at = created_at - interval '25 hours'"
            " WHERE kind = 'call.missed'"
        )
        failed = await wait_state(db, "call.missed", "failed")
        listed = await call(daemon, "GET", "/v1/admin/dead-letters?category=calls")
        others = await call(daemon, "GET", "/v1/admin/dead-letters?category=billing")
        bad = await call(daemon, "GET", "/v1/admin/dead-letters?category=nope&limit=x")
        smtp_sink.rcpt_replies.clear()
        retried = await call(daemon, "POST", f"/v1/admin/notices/{failed['id']}/retry")
        await smtp_sink.wait_for(2)
        after = await call(daemon, "GET", "/v1/admin/dead-letters")
    assert failed["last_error"].startswith("expired:")
    assert "calls lifetime" in failed["last_error"]
    assert failed["smtp_reply"].startswith("451")
    assert listed[0] == 200
    [letter] = listed[1]["dead_letters"]
    assert letter["id"] == str(failed["id"])
    assert letter["kind"] == "call.missed"
    assert letter["smtp_reply"].startswith("451")
    assert letter["failed_at"] is not None
    assert others[1]["dead_letters"] == []
    assert bad[0] == 422
    assert set(bad[1]["fields"]) == {"category", "limit"}
    # The retry gives the notice a fresh lifetime: it is sent, not expired again at once.
    assert retried[0] == 202
    assert after[1]["dead_letters"] == []


async def test_a_security_notice_outlives_a_missed_call(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["delivery"].update(retry_initial_seconds=0.2, retry_max_seconds=0.2)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        await smtp_sink.wait_for(1)
        smtp_sink.rcpt_replies.extend(["421 4.3.2 Service not available"] * 6)
        await daemon.post("pbx", sample_event("account.password_changed", "acc-1"), PBX_SECRET)
        await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        await db.execute(
            "UPDATE notices SET created_at = created_at - interval '2 days'"
            " WHERE kind IN ('call.missed', 'account.password_changed')"
        )
        await wait_state(db, "call.missed", "failed")
        sent = await wait_state(db, "account.password_changed", "sent")
    assert sent["state"] == "sent"
    assert [str(m["To"]) for m in smtp_sink.messages].count("subscriber@example.com") >= 2
