"""The links of an email opened after the subscriber's account was erased, as a subscriber
(or their mail provider's unsubscribe button, RFC 8058) opens them weeks later: nothing of the
erased account comes back into the database, and the page says what happened."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.consent_now_support import broadcast
from tests.integration.daemon_support import form_token, welcome
from tests.integration.privacy_support import columns_holding

ACCOUNT = "acc-gone-1"
EMAIL = "ioana.gone@client.example"
SUBSCRIBER = f"/v1/admin/subscribers/{ACCOUNT}"
GRANT = {"marketing": True, "source": "subscriber", "wording_version": "2026-11"}


async def test_a_one_click_unsubscribe_after_erasure_puts_nothing_back(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        created = sample_event("account.created", ACCOUNT, email=EMAIL, language="en")
        assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
        assert (await call(daemon, "POST", f"{SUBSCRIBER}/consent", json=GRANT))[0] == 201
        await broadcast(daemon, "marketing.offer")
        offer = (await smtp_sink.wait_for(2))[-1]
        link = offer["List-Unsubscribe"].strip("<>")
        assert (await call(daemon, "DELETE", SUBSCRIBER))[0] == 200
        # Weeks later the subscriber presses the mail provider's Unsubscribe on the old offer.
        one_click = {"Content-Type": "application/x-www-form-urlencoded"}
        async with daemon.session.post(
            link, data=b"List-Unsubscribe=One-Click", headers=one_click
        ) as answer:
            status, page = answer.status, await answer.text()
        suppressed = await call(daemon, "GET", f"{SUBSCRIBER}/consent")
    assert status == 200, page
    # Its language went with the account: the page is in the default one, ro.
    assert "V-ați dezabonat" in page, page
    # The erasure stands: the address is nowhere in clear, no consent history is started
    # again for the erased account; the keyed hash keeps the address off offers.
    assert await columns_holding(db, EMAIL) == []
    assert await db.fetchval("SELECT count(*) FROM consent_events") == 0
    assert await db.fetchval("SELECT count(*) FROM erased_addresses") == 1
    assert suppressed[0] == 404, suppressed


async def test_the_preference_link_of_an_erased_account_says_so(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """Not "the link is not valid, open it whole": the subscriber would try it again and
    again. The link is whole; the account it was for is gone."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink, ACCOUNT)
        token = form_token(await (await daemon.session.get(link)).text())
        assert (await call(daemon, "DELETE", SUBSCRIBER))[0] == 200
        async with daemon.session.get(link) as answer:
            opened = answer.status, await answer.text()
        async with daemon.session.get(f"{link}?lang=en") as answer:
            english = await answer.text()
        form = {"form_token": token, "mode.fax": "off"}
        async with daemon.session.post(link, data=form) as answer:
            saved = answer.status, await answer.text()
    assert opened[0] == 410, opened
    assert "Acest cont nu mai există" in opened[1], opened[1]
    assert "nu este valid" not in opened[1]
    assert "This account no longer exists" in english, english
    assert saved[0] == 410, saved
    assert "Acest cont nu mai există" in saved[1]
