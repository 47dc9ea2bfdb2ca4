"""Browser defences of the subscriber pages (HTTP level; no browser is installed here):
every answer of the app carries a Content-Security-Policy and nosniff; a form is saved
only from the page itself (a form token bound to the link, and no cross-site Origin or
Sec-Fetch-Site); a mail provider's RFC 8058 one-click POST still unsubscribes; unsubscribe
links already sent in the old format still work (old preference links, of unknown age,
offer a fresh one); a bad link says which page it was for."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer
from multidict import CIMultiDictProxy

from notifyd.catalogue.samples import sample_event
from notifyd.links import link_secret
from tests.conftest import BILLING_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import form_token, welcome

CROSS_SITE = [
    {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://attacker.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "null"},
]


def assert_defended(headers: CIMultiDictProxy[str], what: str) -> None:
    policy = headers.get("Content-Security-Policy", "")
    directives = {d.strip().split()[0]: d.strip() for d in policy.split(";") if d.strip()}
    assert directives.get("default-src") == "default-src 'none'", (what, policy)
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (what, policy)
    assert directives.get("form-action") == "form-action 'self'", (what, policy)
    assert directives.get("base-uri") == "base-uri 'none'", (what, policy)
    assert directives.get("style-src") == "style-src 'self'", (what, policy)
    assert directives.get("img-src") == "img-src 'self'", (what, policy)
    assert "'unsafe-inline'" not in policy, (what, policy)
    assert headers.get("X-Content-Type-Options") == "nosniff", what


async def test_every_kind_of_answer_carries_the_browser_defences(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        base, admin = daemon.base_url, daemon.admin_url
        event = sample_event("account.created", "acc-2")
        answers: dict[str, CIMultiDictProxy[str]] = {}
        requests: list[tuple[str, str, str, dict[str, Any]]] = [
            ("preference page", "GET", link, {}),
            ("tampered page", "GET", link[:-4] + "AAAA", {}),
            ("unsubscribe page", "GET", f"{base}/v1/unsubscribe/nothing", {}),
            ("unknown path", "GET", f"{base}/v1/nothing-here", {}),
            ("wrong method", "DELETE", link, {}),
            ("health", "GET", f"{base}/healthz", {}),
            ("metrics", "GET", f"{admin}/metrics", {}),
            ("openapi", "GET", f"{base}/openapi.json", {}),
            ("admin openapi", "GET", f"{admin}/openapi.json", {}),
            ("admin refused", "GET", f"{admin}/v1/admin/subscribers/acc-1", {}),
            ("admin path on the public listener", "GET", f"{base}/v1/admin/audit", {}),
            ("webhook refused", "POST", f"{base}/v1/webhooks/pbx", {"json": event}),
        ]
        for what, method, url, options in requests:
            async with daemon.session.request(method, url, **options) as response:
                answers[what] = response.headers
        async with daemon.session.post(
            f"{base}/v1/webhooks/billing", data=b"x" * 10, headers={"webhook-id": "1"}
        ) as response:
            answers["webhook 401"] = response.headers
        status, _ = await daemon.post("billing", event, BILLING_SECRET)
        assert status == 202
    for what, headers in answers.items():
        assert_defended(headers, what)


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_a_cross_site_post_to_the_preference_form_changes_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, headers: dict[str, str]
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with daemon.session.get(link) as page:
            token = form_token(await page.text())
        # Even with the page's own form token (say, read from a leaked page).
        forged = {"offers": "yes", "mode.calls": "off", "form_token": token}
        async with daemon.session.post(link, data=forged, headers=headers) as response:
            status, text = response.status, await response.text()
        consent = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
        preferences = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
    assert status == 403
    assert "Preferin" in text
    assert consent[1]["marketing"]["consent"] is False
    assert preferences[1]["explicit"] == {}


async def test_a_preference_post_without_the_pages_form_token_changes_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        await daemon.post("billing", sample_event("account.created", "acc-2"), BILLING_SECRET)
        assert daemon.daemon.links is not None
        other = daemon.daemon.links.preferences_url("acc-2", issued=datetime.now(UTC))
        assert other != link
        async with daemon.session.get(other) as page:
            others_token = form_token(await page.text())
        statuses = []
        for extra in ({}, {"form_token": "forged"}, {"form_token": others_token}):
            async with daemon.session.post(link, data={"offers": "yes", **extra}) as response:
                statuses.append(response.status)
        consent = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert statuses == [403, 403, 403]
    assert consent[1]["marketing"]["consent"] is False


async def test_the_page_itself_saves_from_the_same_origin(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with daemon.session.get(link) as page:
            token = form_token(await page.text())
        browser = {"Origin": daemon.base_url, "Sec-Fetch-Site": "same-origin"}
        form = {"offers": "yes", "form_token": token}
        async with daemon.session.post(link, data=form, headers=browser) as response:
            status = response.status
        consent = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert status == 200
    assert consent[1]["marketing"]["consent"] is True


async def test_every_page_lets_the_browser_send_its_own_origin_with_its_forms(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """Under "Referrer-Policy: no-referrer" a browser sends "Origin: null" with the page's
    own form POST (Fetch: serialize a request origin), which is refused as a sandboxed
    page's: seen in Chromium, where neither Save, nor Unsubscribe, nor the fresh-link
    button worked. "same-origin" keeps the link out of every other site's referrer."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        base = daemon.base_url
        policies = {}
        for what, url in {
            "preferences": link,
            "unsubscribe": await marketing_link(daemon),
            "not a link": f"{base}/v1/preferences/nothing",
        }.items():
            async with daemon.session.get(url) as page:
                policies[what] = page.headers.get("Referrer-Policy")
    assert policies == dict.fromkeys(policies, "same-origin")


async def test_the_pages_keep_off_the_screens_edges_and_have_buttons_to_touch(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """Seen at 360x740 in Chromium: the text touched both edges and the buttons were
    20 px high. Their stylesheet, served by notifyd (the one origin the
    Content-Security-Policy allows styles from), pads both; it is cached, and linked with
    its content's hash so that a changed one is fetched again."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with daemon.session.get(link) as page:
            text = await page.text()
        found = re.search(r'<link rel="stylesheet" href="(/v1/pages/style\.css\?v=\w+)">', text)
        assert found, text
        async with daemon.session.get(daemon.base_url + found.group(1)) as sheet:
            assert sheet.status == 200
            assert sheet.content_type == "text/css"
            assert "max-age" in sheet.headers["Cache-Control"]
            style = await sheet.text()
            etag = sheet.headers["ETag"]
        async with daemon.session.get(
            daemon.base_url + found.group(1), headers={"If-None-Match": etag}
        ) as again:
            assert again.status == 304
    assert "<style" not in text
    assert " style=" not in text
    assert "<script" not in text
    rules = dict(
        rule.split("{", 1)
        for rule in re.sub(r"/\*.*?\*/|\s*\n\s*", "", style, flags=re.S).rstrip("}").split("}")
    )
    assert "padding:1em" in rules[".card"]
    assert "padding:.6em 1.2em" in rules["button"]
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text


async def marketing_link(daemon: Any, account: str = "acc-1") -> str:
    """An unsubscribe link from offers, for a subscriber who consented to them."""
    await call(
        daemon,
        "POST",
        f"/v1/admin/subscribers/{account}/consent",
        json={"marketing": True, "source": "subscriber", "wording_version": "v1"},
    )
    links = daemon.daemon.links
    assert links is not None
    return str(
        links.unsubscribe_url(account, f"{account}@client.example", issued=datetime.now(UTC))
    )


@pytest.mark.parametrize("headers", CROSS_SITE)
async def test_a_cross_site_post_to_the_unsubscribe_form_changes_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, headers: dict[str, str]
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        link = await marketing_link(daemon)
        async with daemon.session.get(link) as page:
            token = form_token(await page.text())
        form = {"List-Unsubscribe": "One-Click", "form_token": token}
        async with daemon.session.post(link, data=form, headers=headers) as response:
            status = response.status
        consent = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert status == 403
    assert consent[1]["marketing"]["sendable"] is True


async def test_a_browser_post_to_the_unsubscribe_form_needs_the_pages_token(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        link = await marketing_link(daemon)
        browser = {"Origin": daemon.base_url, "Sec-Fetch-Site": "same-origin"}
        one_click = {"List-Unsubscribe": "One-Click"}
        async with daemon.session.post(link, data=one_click, headers=browser) as response:
            without = response.status
        kept = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
        async with daemon.session.get(link) as page:
            token = form_token(await page.text())
        form = {**one_click, "form_token": token}
        async with daemon.session.post(link, data=form, headers=browser) as response:
            with_token = response.status
        gone = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert without == 403
    assert kept[1]["marketing"]["sendable"] is True
    assert with_token == 200
    assert gone[1]["marketing"]["sendable"] is False


async def test_a_mail_providers_one_click_post_without_origin_unsubscribes(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        link = await marketing_link(daemon)
        # What Gmail and Yahoo send (RFC 8058 §3.2): no Origin, no cookies, no form token.
        async with daemon.session.post(
            link,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ) as response:
            status = response.status
        consent = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert status == 200
    assert consent[1]["marketing"]["sendable"] is False
    assert consent[1]["history"][0]["source"] == "unsubscribe-link"


async def test_unsubscribe_links_sent_in_the_old_readable_format_still_work(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        await marketing_link(daemon)
        (secret,) = link_secret(settings.daemon.link_secret, settings.daemon.state_dir)
        old_preferences = URLSafeSerializer(secret, salt="notifyd.rules.preferences").dumps("acc-1")
        old_unsubscribe = URLSafeSerializer(secret, salt="notifyd.unsubscribe").dumps(
            ["acc-1", "acc-1@client.example"]
        )
        async with daemon.session.get(
            f"{daemon.base_url}/v1/preferences/{old_preferences}"
        ) as page:
            page_status, page_text = page.status, await page.text()
        async with daemon.session.post(
            f"{daemon.base_url}/v1/unsubscribe/{old_unsubscribe}",
            data={"List-Unsubscribe": "One-Click"},
        ) as response:
            unsubscribe_status = response.status
        consent = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    # A preference link of unknown age is taken for expired: it offers a fresh one.
    assert page_status == 410
    assert 'name="mode.calls"' not in page_text
    assert "/renew" in page_text
    assert unsubscribe_status == 200
    assert consent[1]["marketing"]["sendable"] is False


@pytest.mark.parametrize(
    ("language", "heading", "invalid", "other"),
    [
        (
            "ro",
            "Preferințe de notificare",
            "Linkul nu este valid. Deschideți-l din nou din email, întreg",
            "Dezabonare",
        ),
        (
            "en",
            "Notification preferences",
            "This link is not valid. Open it again from the email, whole",
            "Unsubscribe",
        ),
    ],
)
async def test_a_tampered_preference_link_says_it_is_the_preference_page(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    language: str,
    heading: str,
    invalid: str,
    other: str,
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        tampered = link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB")
        async with daemon.session.get(f"{tampered}?lang={language}") as page:
            status, text = page.status, await page.text()
        async with daemon.session.get(
            f"{daemon.base_url}/v1/unsubscribe/{tampered.rsplit('/', 1)[1]}?lang={language}"
        ) as page:
            unsubscribe_text = await page.text()
    assert status == 404
    assert f"<h1>{heading}</h1>" in text
    assert invalid in text
    assert other not in text
    assert f"<h1>{other}</h1>" in unsubscribe_text
