"""Links that expire, are revoked, rotate and are tampered with, over HTTP against a daemon
with a real SMTP sink (no browser is installed here; the page tests are HTTP-level). A
link's clock is the time it carries: the tests make links as the daemon would have at an
earlier moment, with its keys."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from notifyd.catalogue.samples import sample_event
from notifyd.links import KEY_FILE, Links
from notifyd.rules.links import RENEWAL_KIND
from tests.conftest import PBX_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import preferences_link, welcome
from tests.integration.links_support import (
    NEW_KEY,
    OLD_KEY,
    ask_fresh_link,
    days_ago,
    get,
    link_settings,
    preference_link,
    unsubscribe_link,
)

ADDRESS = "acc-1@client.example"


async def test_an_expired_link_emails_a_fresh_one_that_opens_the_preferences(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    async with running_daemon(link_settings(tmp_path, database_url, smtp_sink)) as daemon:
        await welcome(daemon, smtp_sink)
        fresh_enough = await get(daemon, preference_link(daemon, "acc-1", days_ago(29.9)))
        expired_status, expired = await get(daemon, preference_link(daemon, "acc-1", days_ago(31)))
        sent_status, sent = await ask_fresh_link(daemon, expired)
        messages = await smtp_sink.wait_for(2)
        renewal = messages[1]
        opened = await get(daemon, preferences_link(renewal))
    assert fresh_enough[0] == 200
    assert expired_status == 410
    assert "Linkul a expirat" in expired  # the default language: it says nothing of the account
    assert 'name="mode.calls"' not in expired
    assert ADDRESS not in expired  # the page never shows the address it sends to
    assert sent_status == 200
    assert "Dacă linkul aparține unui cont" in sent
    assert renewal["To"] == ADDRESS
    assert renewal["Subject"] == "Linkul nou către preferințele dvs. de notificare"
    assert opened[0] == 200
    assert 'name="mode.calls"' in opened[1]


async def test_an_expired_link_saves_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    async with running_daemon(link_settings(tmp_path, database_url, smtp_sink)) as daemon:
        await welcome(daemon, smtp_sink)
        expired = preference_link(daemon, "acc-1", days_ago(40))
        async with daemon.session.post(expired, data={"mode.calls": "off"}) as response:
            status = response.status
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
    assert status == 410
    assert after[1]["explicit"] == {}


async def test_revoked_links_offer_a_fresh_one_and_emails_sent_after_open(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    async with running_daemon(link_settings(tmp_path, database_url, smtp_sink)) as daemon:
        link = await welcome(daemon, smtp_sink)
        before = await get(daemon, link)
        revoked = await call(daemon, "POST", "/v1/admin/subscribers/acc-1/links/revoke")
        unknown = await call(daemon, "POST", "/v1/admin/subscribers/acc-404/links/revoke")
        after = await get(daemon, link)
        await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        later = preferences_link((await smtp_sink.wait_for(2))[1])
        opened = await get(daemon, later)
    assert before[0] == 200
    assert revoked[0] == 200
    assert revoked[1]["account_id"] == "acc-1"
    assert unknown[0] == 404
    assert after[0] == 410
    assert "/renew" in after[1]
    assert opened[0] == 200


async def test_the_first_key_seals_and_a_link_of_the_older_key_still_opens(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    async with running_daemon(link_settings(tmp_path, database_url, smtp_sink)) as daemon:
        emailed = await welcome(daemon, smtp_sink)
        old = await get(daemon, preference_link(daemon, "acc-1", days_ago(1), key=OLD_KEY))
        stranger = await get(daemon, preference_link(daemon, "acc-1", days_ago(1), key="x" * 40))
        token = emailed.rsplit("/", 1)[1]
        tampered = emailed[: -len(token)] + token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        forged = await get(daemon, tampered)
    assert old[0] == 200
    # The email's link is sealed with the first key: it alone opens it, the older cannot.
    assert Links(NEW_KEY, "http://x").read_preferences(token) is not None
    assert Links(OLD_KEY, "http://x").read_preferences(token) is None
    assert stranger[0] == 404
    assert forged[0] == 404


async def test_the_answer_is_the_same_whether_or_not_the_account_exists(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(link_settings(tmp_path, database_url, smtp_sink)) as daemon:
        await welcome(daemon, smtp_sink)
        moment = days_ago(45)
        pages, answers = [], []
        for account in ("acc-1", "acc-nobody"):
            status, page = await get(daemon, preference_link(daemon, account, moment))
            pages.append((status, _without_tokens(page)))
            answers.append(await ask_fresh_link(daemon, page))
        await smtp_sink.wait_for(2)
    assert pages[0] == pages[1]
    assert answers[0] == answers[1]
    renewals = await db.fetch("SELECT account_id FROM notices WHERE kind = $1", RENEWAL_KIND)
    assert [row["account_id"] for row in renewals] == ["acc-1"]


def _without_tokens(page: str) -> str:
    """The page with what is bound to its link (the token, the form token) taken out."""
    page = re.sub(r"/v1/links/[^/]+/renew", "/v1/links/T/renew", page)
    return re.sub(r'name="form_token" value="[^"]+"', 'name="form_token"', page)


async def test_fresh_links_are_limited_per_account_and_per_client(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = link_settings(
        tmp_path,
        database_url,
        smtp_sink,
        renewals_per_account_per_day=2,
        renewals_per_client_per_hour=4,
    )
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        _, page = await get(daemon, preference_link(daemon, "acc-1", days_ago(60)))
        per_account = [await ask_fresh_link(daemon, page) for _ in range(3)]
        await smtp_sink.wait_for(3)  # the welcome and two fresh links
        other = [await ask_fresh_link(daemon, page) for _ in range(2)]
    queued = await db.fetchval("SELECT count(*) FROM notices WHERE kind = $1", RENEWAL_KIND)
    # The third ask of the account gets the same answer, and sends nothing.
    assert [status for status, _ in per_account] == [200, 200, 200]
    assert per_account[2] == per_account[0]
    assert queued == 2
    # The fifth ask from this client in the hour is refused, saying so.
    assert [status for status, _ in other] == [200, 429]
    assert len(smtp_sink.messages) == 3


async def test_an_unsubscribe_link_opens_for_its_lifetime_and_then_offers_a_fresh_link(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    async with running_daemon(link_settings(tmp_path, database_url, smtp_sink)) as daemon:
        await welcome(daemon, smtp_sink)
        year_old = unsubscribe_link(daemon, "acc-1", days_ago(364))
        page = await get(daemon, year_old)
        too_old = unsubscribe_link(daemon, "acc-1", days_ago(731))
        one_click = {"List-Unsubscribe": "One-Click"}
        async with daemon.session.post(too_old, data=one_click) as response:
            expired_status, expired = response.status, await response.text()
        still = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
        async with daemon.session.post(year_old, data=one_click) as response:
            status = response.status
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert page[0] == 200
    assert expired_status == 410
    assert "/renew" in expired
    assert still[1]["marketing"]["suppressed"] is False
    assert status == 200
    assert after[1]["marketing"]["suppressed"] is True


async def test_a_lost_key_file_is_said_loudly_and_the_links_already_sent_stop_opening(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """No key configured: the daemon keeps the one it generated in state_dir/link-secret.
    A restart with the file opens the links already sent; without it (lost, not backed up)
    a new key is generated, which the log says at warning, and they no longer open
    (docs/admin-api.md, "The link keys")."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    assert not settings.daemon.link_secret
    key_file = settings.daemon.state_dir / KEY_FILE

    async def open_link(logs: list[MutableMapping[str, Any]]) -> int:
        """The emailed link's page, on a daemon started now (another port: its path)."""
        with structlog.testing.capture_logs() as captured:
            async with running_daemon(settings) as daemon:
                status, _ = await get(daemon, daemon.base_url + path)
        logs.extend(captured)
        return status

    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
    path = link[link.index("/v1/preferences/") :]
    kept_logs: list[MutableMapping[str, Any]] = []
    kept = await open_link(kept_logs)
    key_file.unlink()
    lost_logs: list[MutableMapping[str, Any]] = []
    lost = await open_link(lost_logs)
    assert (kept, lost) == (200, 404)
    said = [line for line in lost_logs if line["event"].startswith("link key generated anew")]
    assert [line["log_level"] for line in said] == ["warning"]
    assert said[0]["key_file"] == str(key_file)
    assert not [line for line in kept_logs if line["event"].startswith("link key generated")]
