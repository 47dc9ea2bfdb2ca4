"""The preference page's choices beyond the modes: quiet hours as two times, the time zone
by city, the language by its own name, voicemail audio, per-category addresses (never shown
in full), the consent's wording version; and the confirmation that names each change."""

from __future__ import annotations

from html import escape
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
    assert "completați ambele ore" in half[1]
    assert stored["explicit"] == {}


# What a subscriber can get wrong with the page's own controls (Chromium sends the time
# fields as HH:MM, so a wrong time only comes from an older page's text field), and what the
# page must then say, in the page's language.
WRONG = {
    "bad zone": {"timezone": "Lundra"},
    "half quiet hours": {"quiet_to": "07:00"},
    "equal quiet hours": {"quiet_from": "22:00", "quiet_to": "22:00"},
    "bad address": {"addresses.fax": "birou la firma"},
    "bad digest time": {"digest_time": "8 dimineața"},
}
SAID = {
    "ro": {
        "bad zone": "Fusul orar „Lundra” nu este cunoscut: scrieți un oraș și alegeți-l din listă.",
        "half quiet hours": "Intervalul de liniște: completați ambele ore, „De la” și „Până "
        "la”, sau lăsați-le goale pe amândouă.",
        "equal quiet hours": "Intervalul de liniște: începutul și sfârșitul sunt la aceeași "
        "oră. Lăsați-le goale pe amândouă pentru niciun interval.",
        "bad address": "Faxuri: „birou la firma” nu este o adresă de email.",
        "bad digest time": "Ora rezumatului zilnic: „8 dimineața” nu este o oră (de exemplu "
        "08:00).",
    },
    "en": {
        "bad zone": "Unknown time zone “Lundra”: type a city and choose it from the list.",
        "half quiet hours": "Quiet hours: fill in both times, From and Until, or leave both empty.",
        "equal quiet hours": "Quiet hours: the start and the end are the same time. Leave both "
        "empty for none.",
        "bad address": "Faxes: “birou la firma” is not an email address.",
        "bad digest time": "Time of the daily digest: “8 dimineața” is not a time (for "
        "example 08:00).",
    },
}


async def test_what_to_fix_is_said_in_the_page_language(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """A Romanian page said "quiet hours needs both a start and an end, or neither" and
    "'x' is not an email address", in English and in a programmer's words."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    pages: dict[tuple[str, str], tuple[int, str]] = {}
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        for language in ("ro", "en"):
            for case, fields in WRONG.items():
                form = {**fields, "language": language}
                pages[language, case] = await submit(daemon, link, form)
    for (language, case), (status, page) in pages.items():
        assert status == 422, (language, case, page)
        assert f"<li>{escape(SAID[language][case])}</li>" in page, (language, case, page)
