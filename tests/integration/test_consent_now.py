"""Consent and preferences act at once (SPEC §2, issue 18): a category switched off, a
marketing withdrawal (one-click unsubscribe, the admin API, an import) cancels every notice
it covers not yet sent, whatever it waits for, with a reason the admin reads; mandatory
notices go on; and what changes while a notice waits is honoured again as it is claimed.
End to end: signed webhooks and broadcasts in, a real SMTP sink out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from notifyd.http.pages.shell import CSRF_FIELD
from tests.conftest import Running, SmtpSink, load_config, running_daemon, write_config
from tests.integration.admin_support import call
from tests.integration.consent_now_support import (
    WITHDRAWALS,
    broadcast,
    config_for,
    missed_calls_waiting,
    move_clock_past_waits,
    notices,
    preferences,
    quiet_now,
    settings_for,
    settled,
    withdraw,
)
from tests.integration.daemon_support import form_token, post, subscribe

OFF = "cancelled: the subscriber turned calls notices off"


@pytest.mark.parametrize("where", ["admin API", "preference form"])
async def test_calls_switched_off_cancel_every_waiting_missed_call_but_not_the_rest(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection, where: str
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {}, email="ana@client.example")
        await missed_calls_waiting(daemon, "acc-1")
        # Also waiting for the quiet hours: a fax (another category) and a maintenance
        # notice (mandatory).
        await preferences(daemon, "acc-1", quiet_hours=quiet_now())
        await post(daemon, "fax.sent", "acc-1")
        await broadcast(daemon, "notice.service")
        before = await notices(db, "acc-1")
        held_for = await db.fetch("SELECT DISTINCT digest FROM notices WHERE state = 'held'")
        if where == "admin API":
            await preferences(daemon, "acc-1", modes={"calls": "off"})
        else:
            await _switch_off_on_the_page(daemon, "acc-1")
        after = await notices(db, "acc-1")
        status, listed = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/notices")
        await move_clock_past_waits(daemon, db)
        # The welcome, the fax, the maintenance.
        subjects = await settled(smtp_sink, 3, db)
    assert {key: state for key, (state, _) in before.items()} == {
        "call-quiet": "queued",
        "call-digest": "held",
        # Gathered with the missed call waiting for the quiet hours, in a burst's follow-up.
        "call-burst-1": "held",
        "call-burst-2": "held",
        "fax.sent": "queued",
        "notice.service": "queued",
    }
    assert {row["digest"] for row in held_for} == {"hourly", "burst"}
    waited = ("call-quiet", "call-digest", "call-burst-1", "call-burst-2")
    assert {after[call] for call in waited} == {("cancelled", OFF)}
    assert after["fax.sent"][0] == after["notice.service"][0] == "queued"
    assert status == 200
    shown = {n["last_error"] for n in listed["notices"] if n["state"] == "cancelled"}
    assert shown == {OFF}
    assert len(subjects) == 3
    final = await notices(db, "acc-1")
    assert final["fax.sent"][0] == final["notice.service"][0] == "sent"
    assert final["call-quiet"][0] == final["call-burst-2"][0] == "cancelled"


async def _switch_off_on_the_page(daemon: Running, account: str) -> None:
    """The subscriber's own form, as a browser posts it (its form token and Origin)."""
    links = daemon.daemon.links
    assert links is not None
    page_url = links.preferences_url(account, issued=datetime.now(UTC))
    async with daemon.session.get(page_url) as page:
        token = form_token(await page.text())
    form = {CSRF_FIELD: token, "mode.calls": "off"}
    async with daemon.session.post(
        page_url, data=form, headers={"Origin": daemon.base_url}
    ) as saved:
        assert saved.status == 200, await saved.text()


@pytest.mark.parametrize("how", list(WITHDRAWALS))
async def test_a_marketing_withdrawal_cancels_every_waiting_offer(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection, how: str
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    consent = "/v1/admin/subscribers/acc-1/consent"
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {"quiet_hours": quiet_now()}, email="ana@client.example")
        given = {"marketing": True, "source": "subscriber", "wording_version": "v1"}
        assert (await call(daemon, "POST", consent, json=given))[0] == 201
        # An offer queued until quiet hours end, one held for the daily digest, and a
        # maintenance notice (mandatory) waiting for the quiet hours too.
        await broadcast(daemon, "marketing.offer")
        await preferences(daemon, "acc-1", modes={"marketing": "daily"})
        await broadcast(daemon, "marketing.offer")
        await broadcast(daemon, "notice.service")
        before = await db.fetch(
            "SELECT state FROM notices WHERE kind = 'marketing.offer' ORDER BY state"
        )
        await withdraw(daemon, how)
        offers = await db.fetch(
            "SELECT state, last_error FROM notices WHERE kind = 'marketing.offer'"
        )
        await move_clock_past_waits(daemon, db)
        subjects = await settled(smtp_sink, 2, db)  # the welcome, the maintenance
    assert [row["state"] for row in before] == ["held", "queued"]
    assert [row["state"] for row in offers] == ["cancelled", "cancelled"]
    reason = f"cancelled: marketing consent withdrawn via {WITHDRAWALS[how]}"
    assert {row["last_error"] for row in offers} == {reason}
    assert len(subjects) == 2
    assert await db.fetchval("SELECT count(*) FROM notices WHERE state = 'sent'") == 2


async def test_a_change_that_lands_while_notices_wait_wins_at_the_claim(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """Changes written straight to the tables, as one landing between the queueing and the
    claim (or a host of the previous version) leaves them: nothing cancelled the waiting
    notices, so the claim must."""
    settings = settings_for(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        for account in ("acc-off", "acc-ok", "acc-bounced", "acc-unsub", "acc-no"):
            quiet = {"quiet_hours": quiet_now()}
            await subscribe(daemon, account, quiet, email=f"{account}@client.example")
        for account in ("acc-unsub", "acc-no"):
            given = {"marketing": True, "source": "subscriber", "wording_version": "v1"}
            path = f"/v1/admin/subscribers/{account}/consent"
            assert (await call(daemon, "POST", path, json=given))[0] == 201
        for account in ("acc-off", "acc-ok", "acc-bounced"):
            await post(daemon, "call.missed", account, call_id=f"call-{account}")
        await broadcast(daemon, "marketing.offer")
        await db.execute(
            'UPDATE subscribers SET preferences = \'{"modes": {"calls": "off"}}\''
            " WHERE account_id = 'acc-off'"
        )
        await db.execute(
            "INSERT INTO address_health (address, hard_bounces, undeliverable_at)"
            " VALUES ('acc-bounced@client.example', 3, now())"
        )
        await db.execute(
            "INSERT INTO suppressions (address, list, reason)"
            " VALUES ('acc-unsub@client.example', 'marketing', 'test')"
        )
        await db.execute(
            "INSERT INTO consent_events (account_id, purpose, granted, source, wording_version)"
            " VALUES ('acc-no', 'marketing', false, 'test', 'v1')"
        )
        waiting = await db.fetchval(
            "SELECT count(*) FROM notices WHERE state = 'queued' AND due_at > now()"
        )
        await move_clock_past_waits(daemon, db)
        await settled(smtp_sink, 6, db)  # five welcomes, acc-ok's missed call
        rows = await db.fetch(
            "SELECT account_id, kind, state, last_error FROM notices"
            " WHERE kind <> 'account.created' ORDER BY account_id, kind"
        )
    assert waiting == 5
    assert [(r["account_id"], r["kind"], r["state"], r["last_error"]) for r in rows] == [
        (
            "acc-bounced",
            "call.missed",
            "cancelled",
            "cancelled: the address is undeliverable (hard bounces)",
        ),
        ("acc-no", "marketing.offer", "cancelled", "cancelled: marketing consent is withdrawn"),
        ("acc-off", "call.missed", "cancelled", OFF),
        ("acc-ok", "call.missed", "sent", None),
        (
            "acc-unsub",
            "marketing.offer",
            "cancelled",
            "cancelled: the address unsubscribed from marketing",
        ),
    ]
    assert len(smtp_sink.messages) == 6


async def test_a_reload_that_turns_a_category_off_by_default_cancels_what_waits_at_the_claim(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """Missed calls queued for the end of quiet hours while calls were on by default; an
    operator's reload turns them off by default ([defaults.modes]): past the quiet hours
    the claim cancels the call of the subscriber who chose no mode, saying so, and sends
    the one of the subscriber who chose calls themselves. No restart."""
    config = config_for(tmp_path, database_url, smtp_sink)
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        quiet = {"quiet_hours": quiet_now()}
        await subscribe(daemon, "acc-default", quiet, email="acc-default@client.example")
        await subscribe(
            daemon,
            "acc-chose",
            {**quiet, "modes": {"calls": "immediate"}},
            email="acc-chose@client.example",
        )
        for account in ("acc-default", "acc-chose"):
            await post(daemon, "call.missed", account, call_id=f"call-{account}")
        waiting = await db.fetchval(
            "SELECT count(*) FROM notices WHERE state = 'queued' AND due_at > now()"
        )
        write_config(settings.path, {**config, "defaults.modes": {"calls": "off"}})
        assert await daemon.daemon.reload()
        await move_clock_past_waits(daemon, db)
        subjects = await settled(smtp_sink, 3, db)  # two welcomes, acc-chose's call
        calls = {
            row["account_id"]: (row["state"], row["last_error"])
            for row in await db.fetch(
                "SELECT account_id, state, last_error FROM notices WHERE kind = 'call.missed'"
            )
        }
    assert waiting == 2
    assert calls == {
        "acc-default": (
            "cancelled",
            "cancelled: calls notices are off by default ([defaults.modes])",
        ),
        "acc-chose": ("sent", None),
    }
    assert len(subjects) == 3
