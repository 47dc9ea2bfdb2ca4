"""The preference page's choices beyond the modes: quiet hours as two times, the time zone
by city, the language by its own name, voicemail audio, per-category addresses (never shown
in full), the consent's wording version; and the confirmation that names each change."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import submit, welcome


async def test_the_page_offers_each_choice_and_the_confirmation_names_each_change(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with daemon.session.get(link) as page:
            form = await page.text()
        form_fields = {
            "mode.calls": "hourly",
            "quiet_from": "22:30",
            "quiet_to": "07:00",
            "timezone": "london",  # a city, typed in any case
            "language": "en",
            "voicemail_audio": "off",
            "addresses.fax": "office@client.example, fax@client.example",
        }
        status, saved = await submit(daemon, link, form_fields)
        _, stored = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        async with daemon.session.get(link) as page:
            again = await page.text()
    # What the page offers.
    assert '<input id="quiet-from" name="quiet_from" type="time"' in form
    assert 'list="zones"' in form
    assert '<option value="Europe/London" label="London"></option>' in form
    assert ">Română</option>" in form
    assert ">English</option>" in form
    assert "a***@client.example" in form  # the account, masked
    assert "••acc-1" not in form
    assert "Apelurile la care nu ați răspuns" in form  # what the category sends
    assert "preferences-page-1" in form  # the wording the offers checkbox records
    # What was saved.
    assert status == 200, saved
    assert stored["explicit"]["modes"] == {"calls": "hourly"}
    assert stored["explicit"]["quiet_hours"] == "22:30-07:00"
    assert stored["explicit"]["addresses"] == {
        "fax": ["office@client.example", "fax@client.example"]
    }
    assert stored["effective"]["timezone"] == "Europe/London"
    assert stored["effective"]["language"] == "en"
    assert stored["effective"]["voicemail_audio"] is False
    # The confirmation, in the new language, names each change and what it was.
    for line in (
        "Missed calls: Hourly digest (was: At once)",
        "Quiet hours: 22:30–07:00 (was: none)",
        "Time zone: Europe/London (was: Europe/Bucharest)",
        "Language of the emails: English (was: Română)",
        "Voicemail recording: Not attached (was: Attached to the email)",
        "Faxes – Sent to: o***@client.example, f***@client.example",
    ):
        assert f"<li>{line}</li>" in saved, (line, saved)
    # The per-category addresses stay masked on the page too.
    assert "office@client.example" not in again
    assert "o***@client.example" in again


async def test_an_unknown_time_zone_or_half_quiet_hours_save_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        bad_zone = await submit(daemon, link, {"mode.calls": "off", "timezone": "Atlantis"})
        half = await submit(daemon, link, {"mode.calls": "off", "quiet_from": "22:00"})
        bad_address = await submit(daemon, link, {"addresses.fax": "not an address"})
        _, stored = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
    for status, page in (bad_zone, half, bad_address):
        assert status == 422, page
        assert 'role="alert"' in page
    assert "Atlantis" in bad_zone[1]
    assert "needs both a start and an end" in half[1]
    assert stored["explicit"] == {}
