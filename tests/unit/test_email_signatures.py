"""What every email says besides its news (issue 20, "emails that say everything"): the
signature separator, the support contact from [branding] and the brand in both parts'
context, every time with its zone, a voicemail subject that names the mailbox, and the
one-click link of every notice a subscriber can stop, and of no other."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifyd.catalogue.events import CATALOGUE, MANDATORY_CATEGORIES
from notifyd.catalogue.locale import LANGUAGES
from notifyd.catalogue.samples import KIND_EVENT, NOTICE_KINDS, SAMPLE_BROADCASTS
from notifyd.mail.previews import sample_view
from notifyd.mail.rendering import NoticeView, Renderer
from notifyd.rules.digests import DIGEST_KIND
from notifyd.settings.branding import BrandingSettings

SENDER = "Operator <notificari@voip.example>"
NOW = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
BRANDING = BrandingSettings(
    company_name="Exemplu Telecom",
    support_email="suport@voip.example",
    support_phone="+40 21 000 0000",
    support_url="https://www.voip.example/suport",
)
BRANDED = Renderer(SENDER, branding=BRANDING, company="Exemplu Telecom")
EVERY_NOTICE = [
    pytest.param(kind, language, id=f"{kind}-{language}")
    for kind in NOTICE_KINDS
    for language in LANGUAGES
]
# A time as the templates write it ("12:04"), and what must follow it.
CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b")


def view(kind: str, language: str, timezone: str = "Europe/Bucharest") -> NoticeView:
    return dataclasses.replace(sample_view(kind, language, NOW), timezone=timezone)


def plain(renderer: Renderer, notice: NoticeView) -> str:
    message = email.message_from_bytes(renderer.mail(notice, NOW), policy=email.policy.strict)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def signature(text: str) -> list[str]:
    # Mail readers fold or grey what follows a line of exactly "-- " (RFC 3676, 4.3).
    assert text.count("\n-- \n") == 1
    return text.split("\n-- \n")[1].splitlines()


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_every_plain_footer_gives_the_support_contact_after_the_separator(
    kind: str, language: str
) -> None:
    lines = signature(plain(BRANDED, view(kind, language)))

    [support] = [line for line in lines if "suport@voip.example" in line]
    assert (
        support
        == {
            "ro": "Suport Exemplu Telecom: suport@voip.example · +40 21 000 0000 · "
            "https://www.voip.example/suport",
            "en": "Support Exemplu Telecom: suport@voip.example · +40 21 000 0000 · "
            "https://www.voip.example/suport",
        }[language]
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_footer_without_a_support_contact_shows_no_empty_line_for_it(language: str) -> None:
    lines = signature(plain(Renderer(SENDER), view("call.missed", language)))

    assert not any(line.startswith(("Suport", "Support")) for line in lines)
    # No name to give: the sender has no display name and [branding] no company_name.
    only_phone = Renderer(
        "notificari@voip.example", branding=BrandingSettings(support_phone="+40 21 000 0000")
    )
    assert {"ro": "Suport: +40 21 000 0000", "en": "Support: +40 21 000 0000"}[
        language
    ] in signature(plain(only_phone, view("call.missed", language)))


def test_the_brand_reaches_the_html_templates_too(tmp_path: Path) -> None:
    # The HTML layout (templates/layout.html) reads the same `brand` as the plain footers.
    (tmp_path / "call.missed.en.html").write_text(
        "<p>{{ brand.company }} | {{ brand.support_email }} | {{ brand.primary_colour }}</p>"
    )
    renderer = Renderer(
        SENDER, override_folder=tmp_path, branding=BRANDING, company="Exemplu Telecom"
    )

    html = renderer.render(view("call.missed", "en")).html

    assert html == "<p>Exemplu Telecom | suport@voip.example | #0b5cad</p>"


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
@pytest.mark.parametrize(
    ("zone", "shown"),
    [("Europe/Bucharest", "Europe/Bucharest"), ("America/New_York", "America/New York")],
)
def test_every_time_shown_names_its_zone(kind: str, language: str, zone: str, shown: str) -> None:
    notice = view(kind, language, zone)
    if kind in SAMPLE_BROADCASTS:
        # The operator's own text (a maintenance window "02:00-04:00") is theirs to word.
        notice = dataclasses.replace(notice, data={**notice.data, "body": {language: "."}})
    if kind == DIGEST_KIND:
        # A digest's items are its notices' lines, rendered in the subscriber's zone.
        items = [BRANDED.line(view("call.missed", language, zone))]
        notice = dataclasses.replace(notice, context={**notice.context, "items": items})
    rendered = BRANDED.render(notice)

    for text in (rendered.subject, rendered.text, rendered.line):
        for clock in CLOCK.finditer(text):
            assert text[clock.end() :].startswith(f" ({shown})"), text[clock.start() :][:60]


@pytest.mark.parametrize(
    ("language", "subject"),
    [
        ("ro", "Mesaj vocal nou de la Ion Ionescu în căsuța vocală 1001"),
        ("en", "New voicemail from Ion Ionescu in mailbox 1001"),
    ],
)
def test_a_voicemail_subject_names_the_caller_and_the_mailbox(language: str, subject: str) -> None:
    # Not joined to a missed call (whose subject names the number called already).
    alone = view("voicemail.received", language)
    alone = dataclasses.replace(
        alone,
        data={**alone.data, "mailbox": "1001"},
        context={k: v for k, v in alone.context.items() if k != "missed_call"},
    )

    assert BRANDED.render(alone).subject == subject
    withheld = dataclasses.replace(
        alone, data={**alone.data, "caller_number": "anonymous", "caller_name": None}
    )
    assert BRANDED.render(withheld).subject.endswith(subject.rsplit(" ", 1)[-1])
    assert "anonymous" not in BRANDED.render(withheld).subject


def _category(kind: str) -> str | None:
    event = CATALOGUE.get(KIND_EVENT.get(kind, kind))
    return None if event is None or event.category is None else str(event.category)


STOPPABLE = {"call.missed": "calls", "voicemail.received": "voicemail", "fax.received": "fax"}


@pytest.mark.parametrize("kind", sorted(STOPPABLE))
@pytest.mark.parametrize(
    ("language", "wording"),
    [("ro", "Nu mai doresc emailuri despre {} (dezabonare): "), ("en", "Stop {} (unsubscribe): ")],
)
def test_a_notice_that_can_be_stopped_carries_its_one_click_link(
    kind: str, language: str, wording: str
) -> None:
    notice = view(kind, language)
    named = {
        "ro": {"calls": "apeluri nepreluate", "voicemail": "mesaje vocale", "fax": "faxuri"},
        "en": {"calls": "missed-call emails", "voicemail": "voicemail emails", "fax": "fax emails"},
    }[language][STOPPABLE[kind]]

    message = BRANDED.message(notice, NOW)

    url = notice.context["unsubscribe_url"]
    assert message["List-Unsubscribe"] == f"<{url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert wording.format(named) + url in signature(plain(BRANDED, notice))


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_only_categories_a_subscriber_can_switch_off_get_a_category_link(
    kind: str, language: str
) -> None:
    category = _category(kind)
    context = view(kind, language).context

    if category is None or category in MANDATORY_CATEGORIES or category == "marketing":
        assert "unsubscribe_category" not in context
    else:
        assert context["unsubscribe_category"] == category
    if category in MANDATORY_CATEGORIES:
        assert "List-Unsubscribe" not in BRANDED.message(view(kind, language), NOW)


ASKS_FOR_SUPPORT = ("our support team", "echipa noastră de asistență")


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_a_message_that_asks_to_contact_support_says_how(kind: str, language: str) -> None:
    """Security notices ask the subscriber to reach support at once: with [branding]'s
    contact set, the sentence gives it; without, it reads as before (no empty brackets)."""
    notice = view(kind, language)
    branded = BRANDED.render(notice)
    bare = Renderer(SENDER).render(notice)
    contact = "(suport@voip.example · +40 21 000 0000 · https://www.voip.example/suport)"
    for body in (branded.text, branded.html):
        for ask in ASKS_FOR_SUPPORT:
            for at in [m.end() for m in re.finditer(re.escape(ask), body)]:
                assert body[at:].lstrip().startswith(contact), (kind, body[at : at + 80])
    for body in (bare.text, bare.html):
        assert "()" not in body
        assert "( )" not in body


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    "kind",
    [
        "account.password_changed",
        "account.password_reset_requested",
        "account.pin_created",
        "account.email_changed",
        "account.ip_allowlist_changed",
        "usage.daily_limit_exceeded",
    ],
)
def test_the_security_notices_name_the_support_contact_in_their_advice(
    kind: str, language: str
) -> None:
    rendered = BRANDED.render(view(kind, language))
    advice = {"ro": "echipa noastră de asistență (", "en": "our support team ("}[language]
    assert advice + "suport@voip.example · +40 21 000 0000" in rendered.text
    assert advice + "suport@voip.example · +40 21 000 0000" in rendered.html
