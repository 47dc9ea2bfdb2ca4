"""A notice of a category the subscriber can switch off carries its own one-click
unsubscribe (RFC 8058): a mail provider's POST turns that category off for the account,
recorded in the audit trail, and the next such event sends nothing. A mandatory notice
carries none (issue 20, "emails that say everything")."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import PBX_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import welcome


def plain_text(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert isinstance(text, str)
    return text


async def test_a_missed_calls_one_click_turns_calls_off_and_the_next_call_sends_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        event = sample_event("call.missed", "acc-1", call_id="call-1")
        assert (await daemon.post("pbx", event, PBX_SECRET))[0] == 202
        missed = (await smtp_sink.wait_for(2))[1]
        link = missed["List-Unsubscribe"].strip("<>")
        async with daemon.session.get(link) as page:
            asked = await page.text()
        # What Gmail and Yahoo send (RFC 8058 §3.2): no Origin, no cookies, no form token.
        async with daemon.session.post(
            link,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response:
            status, done = response.status, await response.text()
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        again = sample_event("call.missed", "acc-1", call_id="call-2")
        assert (await daemon.post("pbx", again, PBX_SECRET))[0] == 202
        # A mandatory notice after it: it arrives, and nothing else came before it.
        password = sample_event("account.password_changed", "acc-1")
        assert (await daemon.post("pbx", password, PBX_SECRET))[0] == 202
        messages = await smtp_sink.wait_for(3)
        # What the calls queued was committed before their 202s.
        kinds = [r["kind"] for r in await db.fetch("SELECT kind FROM notices")]
        audit = await db.fetch(
            "SELECT actor, action, detail FROM audit WHERE account_id = 'acc-1'"
            " AND action = 'preferences.changed'"
        )
    assert missed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.startswith(daemon.base_url + "/v1/unsubscribe/")
    assert f"Nu mai doresc emailuri despre apeluri nepreluate (dezabonare): {link}" in (
        plain_text(missed)
    )
    assert "Nu mai doresc să primesc emailuri despre apeluri nepreluate." in asked
    assert status == 200
    assert "Nu veți mai primi emailuri despre apeluri nepreluate." in done
    assert after[1]["effective"]["modes"]["calls"] == "off"
    assert after[1]["explicit"]["modes"] == {"calls": "off"}
    assert kinds.count("call.missed") == 1
    [audited] = audit
    assert audited["actor"] == "subscriber link"
    assert audited["detail"] == {"fields": ["modes.calls"], "via": "unsubscribe"}
    assert len(messages) == 3
    assert messages[2]["Subject"] == "Parola contului dvs. a fost schimbată"
    assert messages[2]["List-Unsubscribe"] is None
    assert messages[2]["List-Unsubscribe-Post"] is None
    # The welcome (service) carries none either.
    assert messages[0]["List-Unsubscribe"] is None


async def test_the_category_off_page_speaks_english_to_an_english_subscriber(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        await call(
            daemon, "PATCH", "/v1/admin/subscribers/acc-1/preferences", json={"language": "en"}
        )
        links = daemon.daemon.links
        assert links is not None
        link = links.category_off_url(
            "acc-1", "acc-1@client.example", "voicemail", issued=datetime.now(UTC)
        )
        async with daemon.session.get(link) as page:
            asked = await page.text()
        async with daemon.session.post(
            link,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response:
            done = await response.text()
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
    assert "I no longer want to receive voicemail emails." in asked
    assert "You will no longer receive voicemail emails." in done
    assert after[1]["effective"]["modes"]["voicemail"] == "off"
