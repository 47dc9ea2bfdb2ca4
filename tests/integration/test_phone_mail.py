"""Every email notifyd sends, as a phone's mail app shows it: the HTML part of the real MIME
message (the renderer the daemon builds from the config, [branding] set) loaded into Debian's
chromium at 360 px, with remote images blocked as most mail apps start. Each kind in both
languages, and the hard cases besides (a voicemail from a caller with a very long name, an
offer whose body pastes a long URL, a digest with its unsubscribe link): no horizontal
scroll, no serious axe-core violation, a screenshot of each in test-artifacts/screenshots/.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from playwright.async_api import Page, Route

from notifyd.catalogue.locale import LANGUAGES
from notifyd.catalogue.samples import NOTICE_KINDS
from notifyd.links import Links
from notifyd.mail.previews import renderer_for, sample_view
from notifyd.mail.rendering import NoticeView, Renderer
from tests.conftest import base_config, load_config
from tests.integration.browser_support import assert_accessible, assert_fits, phone, screenshot

NOW = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
BRANDING = {
    "company_name": "Exemplu Telecom",
    "logo_url": "https://www.voip.example/logo.png",
    "support_email": "suport@voip.example",
    "support_phone": "+40 21 000 0000",
    "support_url": "https://www.voip.example/suport",
    "privacy_url": "https://www.voip.example/confidentialitate",
    "terms_url": "https://www.voip.example/termeni",
}
LINK_KEY = "phone-mail-link-key-MjAyNi0xMS0yMg"
# Kinds whose category a subscriber can switch off: their email carries an unsubscribe link.
STOPPABLE = frozenset({"call.missed", "voicemail.received", "fax.received", "fax.sent"})
LONG_NAME = (
    "Societatea Comercială de Distribuție a Energiei Electrice Muntenia Nord "
    "Dispeceratul-Central-Regional-de-Intervenții-Tehnice-Nonstop"
)
LONG_URL = (
    "https://www.voip.example/oferte/nelimitat-retea-decembrie-2026/"
    "detalii-complete-si-conditii?utm_source=notifyd&utm_medium=email&utm_campaign=dec2026"
)


def branded_renderer(tmp_path: Path) -> Renderer:
    config = base_config(tmp_path, "postgresql://unused/db", None, branding=BRANDING)
    return renderer_for(load_config(tmp_path, config))


def hard_cases() -> dict[str, NoticeView]:
    voicemail = sample_view("voicemail.received", "ro", NOW)
    offer = sample_view("marketing.offer", "en", NOW)
    body = {**offer.data["body"], "en": offer.data["body"]["en"] + f"\n\nDetails: {LONG_URL}"}
    return {
        "voicemail-long-caller-ro": dataclasses.replace(
            voicemail, data={**voicemail.data, "caller_name": LONG_NAME}
        ),
        "offer-long-url-en": dataclasses.replace(offer, data={**offer.data, "body": body}),
    }


def with_real_links(notice: NoticeView) -> NoticeView:
    """The sample's links as long as the daemon's are (sealed tokens: 120 characters and
    more, no place to break), and an unsubscribe link on the kinds a subscriber can stop."""
    links = Links(LINK_KEY, "https://notificari.voip.example")
    real = {"preferences_url": links.preferences_url("acc-1001", issued=NOW)}
    if "unsubscribe_url" in notice.context or notice.kind in STOPPABLE:
        real["unsubscribe_url"] = links.unsubscribe_url(
            "acc-1001", "subscriber@example.com", "calls", issued=NOW
        )
    return dataclasses.replace(notice, context={**notice.context, **real})


def every_email() -> dict[str, NoticeView]:
    views = {
        f"{kind}-{language}": sample_view(kind, language, NOW)
        for kind in NOTICE_KINDS
        for language in LANGUAGES
    }
    return {name: with_real_links(view) for name, view in {**views, **hard_cases()}.items()}


def html_part(renderer: Renderer, notice: NoticeView) -> str:
    """The HTML alternative of the message as it leaves (bytes parsed back)."""
    sent = email.message_from_bytes(renderer.mail(notice, NOW), policy=email.policy.default)
    assert isinstance(sent, EmailMessage)
    part = sent.get_body(preferencelist=("html",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


async def block_remote(route: Route) -> None:
    await route.abort()


async def check_on_phone(page: Page, name: str, html: str) -> list[str]:
    await page.set_content(html, wait_until="load")
    await screenshot(page, f"email-{name}")
    problems = []
    for check in (assert_fits, assert_accessible):
        try:
            await check(page, name)
        except AssertionError as error:
            problems.append(str(error))
    return problems


async def test_every_email_fits_a_phone_and_passes_axe(tmp_path: Path) -> None:
    renderer = branded_renderer(tmp_path)
    problems: list[str] = []
    async with phone() as page:
        # A mail app shows the message before (or without) loading its images.
        await page.route("**/*", block_remote)
        for name, notice in every_email().items():
            problems += await check_on_phone(page, name, html_part(renderer, notice))
    assert not problems, "\n".join(problems)


async def test_without_branding_every_email_still_fits(tmp_path: Path) -> None:
    """The defaults an operator starts with: no logo, no support contact, no legal links."""
    renderer = renderer_for(
        load_config(tmp_path, base_config(tmp_path, "postgresql://unused/db", None))
    )
    problems: list[str] = []
    async with phone() as page:
        for name, notice in hard_cases().items():
            notice = with_real_links(notice)
            problems += await check_on_phone(page, f"unbranded-{name}", html_part(renderer, notice))
    assert not problems, "\n".join(problems)
