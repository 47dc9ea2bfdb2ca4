"""The subscriber pages in Debian's chromium at 360 px (browser_support.py): the preference
link of a real welcome email opened, its choices changed with the page's own controls and
saved, the confirmation naming the changes, and the next email following them; the
unsubscribe button page and its answer; an expired and a tampered link. Every page fits the
phone's width and passes axe-core; each is saved as a screenshot (test-artifacts/, and by
hand to docs/images/ for docs/subscribers.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Page

from notifyd.catalogue.samples import sample_event
from notifyd.settings import Settings
from tests.conftest import PBX_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config
from tests.integration.browser_support import (
    PHONE,
    assert_accessible,
    assert_fits,
    phone,
    screenshot,
)
from tests.integration.daemon_support import welcome


async def _checked(page: Page, name: str) -> None:
    """The page as a subscriber's phone shows it: no sideways scroll, no serious axe
    violation, a screenshot kept. A mobile browser zooms a page wider than the screen out
    until it fits, so the viewport's width is checked too: zoomed out, it grows past 360."""
    assert await page.evaluate("window.innerWidth") == PHONE["width"], name
    await assert_fits(page, name)
    await assert_accessible(page, name)
    await screenshot(page, name)


def _branded(tmp_path: Path, database_url: str, smtp_sink: SmtpSink) -> Settings:
    """A provider's config with a support contact and legal pages, as the screenshots show."""
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["branding"] = {
        "company_name": "Exemplu Telecom",
        "support_email": "suport@telecom.example",
        "support_phone": "+40 21 000 0000",
        "privacy_url": "https://www.telecom.example/confidentialitate",
        "terms_url": "https://www.telecom.example/termeni",
    }
    return load_config(tmp_path, config)


def _quiet_hours_away_from_now() -> tuple[str, str]:
    """Quiet hours in London that do not hold the next email: they start in two hours."""
    now = datetime.now(ZoneInfo("Europe/London"))
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    return start.strftime("%H:%M"), end.strftime("%H:%M")


async def test_a_subscriber_changes_their_choices_on_a_phone_and_the_next_email_follows(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = _branded(tmp_path, database_url, smtp_sink)
    quiet_from, quiet_to = _quiet_hours_away_from_now()
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with phone() as page:
            response = await page.goto(link)
            assert response is not None
            assert response.status == 200
            await _checked(page, "preferences")
            await page.get_by_label("Cum primiți").first.select_option("immediate")
            await page.locator("#mode-fax").select_option("off")
            await page.get_by_label("De la").fill(quiet_from)
            await page.get_by_label("Până la").fill(quiet_to)
            await page.get_by_label("Fusul orar").fill("Europe/London")
            await page.get_by_label("Limba mesajelor").select_option("en")
            await page.get_by_role("button", name="Salvează").click()
            await page.wait_for_load_state()
            confirmation = await page.locator("main").inner_text()
            await _checked(page, "preferences-saved")
        await daemon.post("pbx", sample_event("fax.received", "acc-1"), PBX_SECRET)
        await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        messages = await smtp_sink.wait_for(2)
    assert "Faxes: Off (was: At once)" in confirmation
    assert f"Quiet hours: {quiet_from}–{quiet_to} (was: none)" in confirmation
    assert "Time zone: Europe/London (was: Europe/Bucharest)" in confirmation
    assert "Language of the emails: English (was: Română)" in confirmation
    # The next email is in English, and the fax (turned off) sent nothing.
    assert "missed call" in str(messages[-1]["Subject"]).lower(), messages[-1]["Subject"]
    assert len(smtp_sink.messages) == 2, [str(m["Subject"]) for m in smtp_sink.messages]


async def test_the_unsubscribe_expired_and_tampered_pages_on_a_phone(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = _branded(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        links = daemon.daemon.links
        assert links is not None
        now = datetime.now(UTC)
        unsubscribe = str(links.unsubscribe_url("acc-1", "acc-1@client.example", issued=now))
        expired = str(links.preferences_url("acc-1", issued=now - timedelta(days=4000)))
        async with phone() as page:
            await page.goto(unsubscribe)
            await _checked(page, "unsubscribe")
            await page.get_by_role("button", name="Dezabonare").click()
            await page.wait_for_load_state()
            done = await page.locator("main").inner_text()
            await _checked(page, "unsubscribed")
            answer = await page.goto(expired)
            assert answer is not None
            assert answer.status == 410
            await _checked(page, "link-expired")
            await page.get_by_role("button", name="Trimiteți-mi un link nou").click()
            await page.wait_for_load_state()
            sent = await page.locator("main").inner_text()
            await _checked(page, "fresh-link-sent")
            answer = await page.goto(link[:-4] + "AAAA")
            assert answer is not None
            assert answer.status == 404
            invalid = await page.locator("main").inner_text()
            await _checked(page, "link-invalid")
    assert "V-ați dezabonat" in done
    assert "link nou este pe drum" in sent
    assert "Linkul nu este valid" in invalid
