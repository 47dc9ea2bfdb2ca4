"""Every email links to the subscriber's preference page (SPEC §5); the page shows the
effective choices and saves only what the subscriber changed; digests unsubscribe by
category."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, PBX_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import preferences_link, submit, welcome


async def test_every_email_links_to_the_preference_page_in_text_and_html(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        messages = await smtp_sink.wait_for(2)
        async with daemon.session.get(link) as page:
            status, form = page.status, await page.text()
            cache = page.headers.get("Cache-Control")
    for mail in messages:
        # Each email's own link (it carries when it was made, to expire from there).
        own = preferences_link(mail)
        assert own.startswith(daemon.base_url + "/v1/preferences/")
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert f'href="{own}"' in html
    assert link == preferences_link(messages[0])
    assert status == 200
    assert cache == "no-store"
    # The page shows the effective choices (the defaults: every category at once) and no
    # address (a forwarded email must not reveal them).
    assert 'name="mode.calls"' in form
    assert '<option value="immediate" selected>' in form
    assert "acc-1@client.example" not in form


async def test_the_page_saves_only_what_changed_and_the_rest_follows_the_defaults(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        before = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        form = {
            "mode.calls": "daily",
            "mode.voicemail": "immediate",
            "mode.fax": "off",
            "mode.billing": "immediate",
            "mode.low_credit": "immediate",
            "quiet_hours": before[1]["effective"]["quiet_hours"],
            "digest_time": "07:15",
            "language": "en",
        }
        saved_status, saved_page = await submit(daemon, link, form)
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
    assert saved_status == 200
    assert "Your preferences are saved." in saved_page  # answered in the new language
    explicit = after[1]["explicit"]
    assert explicit == {"modes": {"calls": "daily", "fax": "off"}, "digest_time": "07:15"}
    assert after[1]["effective"]["language"] == "en"
    assert "quiet_hours" not in explicit  # submitted unchanged: still the admin's default


async def test_a_wrong_value_saves_nothing_and_says_what_is_wrong(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        form = {"mode.calls": "off", "quiet_hours": "late at night", "digest_time": "08:00"}
        status, page = await submit(daemon, link, form)
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
        async with daemon.session.get(forged) as bad_get:
            bad_get_status = bad_get.status
        async with daemon.session.post(forged, data={"mode.calls": "off"}) as bad_post:
            bad_post_status = bad_post.status
    assert status == 422
    assert "late at night" in page
    assert after[1]["explicit"] == {}
    assert bad_get_status == 404
    assert bad_post_status == 404


async def test_the_subscribers_own_yes_on_the_page_lifts_an_unsubscribe(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        await call(
            daemon,
            "POST",
            "/v1/admin/subscribers/acc-1/consent",
            json={"marketing": False, "source": "admin", "wording_version": "v1"},
        )
        suppressed = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
        assert (await submit(daemon, link, {"offers": "yes"}))[0] == 200
        granted = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
        # Saving the form without the box withdraws again.
        assert (await submit(daemon, link, {"mode.calls": "immediate"}))[0] == 200
        withdrawn = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert suppressed[1]["marketing"]["suppressed"] is True
    assert granted[1]["marketing"] == {"consent": True, "suppressed": False, "sendable": True}
    assert granted[1]["history"][0]["source"] == "subscriber"
    assert withdrawn[1]["marketing"]["sendable"] is False


async def test_a_digest_carries_one_click_unsubscribe_from_its_category(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    from datetime import UTC, datetime, timedelta

    from notifyd.jobs import flush_digests

    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={"modes": {"calls": "hourly"}, "quiet_hours": ""},
        )
        for n in range(2):
            event = sample_event("call.missed", "acc-1", call_id=f"call-{n}")
            assert (await daemon.post("pbx", event, PBX_SECRET))[0] == 202
        assert daemon.daemon.database is not None
        pool = daemon.daemon.database.pool
        flushed = await flush_digests(
            pool, datetime.now(UTC) + timedelta(hours=2), "voip.example", lambda: None
        )
        messages = await smtp_sink.wait_for(2)
        digest = messages[1]
        link = digest["List-Unsubscribe"].strip("<>")
        async with daemon.session.post(link, data={"List-Unsubscribe": "One-Click"}) as response:
            status = response.status
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        await daemon.post("pbx", sample_event("call.missed", "acc-1", call_id="c-3"), PBX_SECRET)
        # What the call queued was committed before its 202: no wait.
        states = await db.fetch("SELECT kind, state FROM notices ORDER BY created_at")
    assert flushed == (1, 2)
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert preferences_link(digest).startswith(daemon.base_url + "/v1/preferences/")
    assert status == 200
    assert after[1]["effective"]["modes"]["calls"] == "off"
    # The call after the unsubscribe queued nothing.
    assert [r["kind"] for r in states].count("call.missed") == 2


async def test_the_unsubscribe_page_speaks_the_subscribers_language(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-en", language="en")
        await daemon.post("billing", event, BILLING_SECRET)
        await smtp_sink.wait_for(1)
        links = daemon.daemon.links
        assert links is not None
        link = links.unsubscribe_url("acc-en", "subscriber@example.com", issued=datetime.now(UTC))
        async with daemon.session.get(link) as page:
            english = await page.text()
        async with daemon.session.get(link + "?lang=ro") as page:
            asked = await page.text()
    assert "I no longer want to receive these messages" in english
    assert "Nu mai doresc" in asked
