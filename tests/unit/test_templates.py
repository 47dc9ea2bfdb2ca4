"""The packaged templates: every notice kind in both languages gives a sound email that says
what happened, in the subscriber's words, zone and currency, and never a secret."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest

import notifyd
from notifyd.catalogue.locale import LANGUAGES
from notifyd.catalogue.samples import NOTICE_KINDS
from notifyd.mail.previews import sample_view
from notifyd.mail.rendering import NoticeView, RenderedNotice, Renderer, brand_values
from notifyd.settings.branding import BrandingSettings

SENDER = "Operator <notificari@voip.example>"
# The samples' times are 30 s before NOW: 10:04:30 UTC, 12:04 in Bucharest (EET, UTC+2).
NOW = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
PACKAGED = Path(notifyd.__file__).parent / "templates"
RENDERER = Renderer(SENDER)

CEDILLA_LETTERS = "şţŞŢ"  # U+015F U+0163 U+015E U+0162: the look-alikes of ș ț Ș Ț
# A raw RFC 3339 date or timestamp (e.g. "2026-11-22" or "2026-11-22T10:04:30+00:00").
RAW_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SECRET_LABEL = re.compile(r"\b(parola|parolă|password|pin)\s*:\s*\S", re.IGNORECASE)
FOOTER = {
    "ro": "Acest mesaj a fost generat automat; vă rugăm să nu răspundeți.",
    "en": "This message was generated automatically; please do not reply.",
}
# The words the HTML part shows for its links (the raw URLs are in the plain part only).
PREFERENCES = {"ro": "Preferințe de notificare", "en": "Preferences"}
UNSUBSCRIBE = {"ro": "Dezabonare", "en": "Unsubscribe"}
PORTAL = {"ro": "în portalul de client", "en": "in the customer portal"}
RESET = {"ro": "Setați o parolă nouă", "en": "Set a new password"}
LOCAL_TIME = {"ro": "22 noiembrie 2026, 12:04", "en": "22 November 2026, 12:04"}

EVERY_NOTICE = [
    pytest.param(kind, language, id=f"{kind}-{language}")
    for kind in NOTICE_KINDS
    for language in LANGUAGES
]


# -- helpers -----------------------------------------------------------------------------------


def view(kind: str, language: str) -> NoticeView:
    sample = sample_view(kind, language, NOW)
    assert isinstance(sample, NoticeView)
    return sample


def with_extra(notice: NoticeView, **changes: Any) -> NoticeView:
    return dataclasses.replace(notice, context={**notice.context, **changes})


def with_data(notice: NoticeView, **changes: Any) -> NoticeView:
    return dataclasses.replace(notice, data={**notice.data, **changes})


def with_attachment(notice: NoticeView, **changes: Any) -> NoticeView:
    return with_extra(notice, attachment={**notice.context["attachment"], **changes})


def render(notice: NoticeView) -> RenderedNotice:
    return RENDERER.render(notice)


def reparsed(notice: NoticeView) -> EmailMessage:
    raw = RENDERER.message(notice, NOW).as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.strict)
    assert isinstance(parsed, EmailMessage)
    return parsed


def part_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def everything(rendered: RenderedNotice) -> str:
    """All a subscriber can read of a notice: subject, digest line, text and HTML."""
    return "\n".join((rendered.subject, rendered.line, rendered.text, rendered.html))


class StrictHTML(HTMLParser):
    """Records tags, attributes, links and text; an end tag that does not close the innermost
    open element is an error, and so is an element left open."""

    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
        | {"track", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.seen: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.doctype: str | None = None
        self.text: list[str] = []
        self.links: list[tuple[str, str]] = []
        self._link: tuple[str, list[str]] | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        self.attributes.extend((tag, name, value or "") for name, value in attrs)
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "a":
            self._link = (dict(attrs).get("href") or "", [])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.errors.append(f"<{tag}/> is not a void element")
        self.seen.append(tag)
        self.attributes.extend((tag, name, value or "") for name, value in attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:] or 'anything'}")
        else:
            self.stack.pop()
        if tag == "a" and self._link is not None:
            href, text = self._link
            self.links.append((href, "".join(text).strip()))
            self._link = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._link is not None:
            self._link[1].append(data)

    def close(self) -> None:
        super().close()
        if self.stack:
            self.errors.append(f"left open: {self.stack}")


def parse_html(markup: str) -> StrictHTML:
    parser = StrictHTML()
    parser.feed(markup)
    parser.close()
    return parser


def urls_in(value: Any) -> set[str]:
    """Every http(s) URL among a notice's data and extra values."""
    if isinstance(value, str):
        return {value} if value.startswith(("https://", "http://")) else set()
    if isinstance(value, dict):
        return set().union(*(urls_in(item) for item in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(urls_in(item) for item in value))
    return set()


# -- every kind, both languages: structure ------------------------------------------------------


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_every_kind_has_a_text_and_an_html_template(kind: str, language: str) -> None:
    assert (PACKAGED / f"{kind}.{language}.txt").is_file()
    assert (PACKAGED / f"{kind}.{language}.html").is_file()


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_message_reparses_under_the_strict_policy(kind: str, language: str) -> None:
    notice = view(kind, language)

    message = reparsed(notice)

    assert message.defects == []
    assert all(part.defects == [] for part in message.walk())
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert message["Subject"] == render(notice).subject
    assert message["Content-Language"] == language


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_subject_is_one_line_without_raw_timestamps(kind: str, language: str) -> None:
    subject = reparsed(view(kind, language))["Subject"]

    assert subject.strip()
    assert "\n" not in subject
    assert not RAW_DATE.search(subject)


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_digest_line_is_one_line_without_raw_timestamps(kind: str, language: str) -> None:
    line = render(view(kind, language)).line

    assert line.strip()
    assert "\n" not in line
    assert not RAW_DATE.search(line)


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_text_part_shows_no_raw_timestamps_and_ends_with_the_footer(
    kind: str, language: str
) -> None:
    text = part_text(reparsed(view(kind, language)), "plain")

    assert not RAW_DATE.search(text)
    # The signature after "-- ": the footer, then the link to the preference page (SPEC §5:
    # in every email), then the category's one-click link where it can be stopped.
    _, signature = text.rstrip().split("\n-- \n")
    footer, preferences, *stop = signature.splitlines()
    assert footer == FOOTER[language]
    context = view(kind, language).context
    assert preferences.endswith(" " + context["preferences_url"])
    assert stop == ([] if "unsubscribe_category" not in context else [stop[0]])
    assert "None" not in text


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_html_part_is_well_formed(kind: str, language: str) -> None:
    html = part_text(reparsed(view(kind, language)), "html")

    parsed = parse_html(html)

    assert parsed.errors == []
    assert parsed.doctype is not None
    assert parsed.doctype.lower() == "doctype html"
    assert parsed.seen[:2] == ["html", "head"]
    assert f'<html lang="{language}">' in html
    assert FOOTER[language] in "".join(parsed.text)
    assert not RAW_DATE.search("".join(parsed.text))


@pytest.mark.parametrize("language", LANGUAGES)
def test_layout_alone_is_well_formed(language: str) -> None:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("notifyd", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    brand = brand_values(BrandingSettings(), "", SENDER)

    html = env.get_template("layout.html").render(subject="A <subject>", lang=language, brand=brand)

    parsed = parse_html(html)
    assert parsed.errors == []
    assert "A &lt;subject&gt;" in html


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_html_loads_nothing_and_links_by_a_word_to_their_target(kind: str, language: str) -> None:
    notice = view(kind, language)
    # Every status that shows a link, so the portal links are checked too.
    if "attachment" in notice.context:
        notice = with_attachment(notice, status="too_large")

    parsed = parse_html(render(notice).html)

    assert not {"img", "script", "style", "link", "iframe", "object", "embed", "form"} & set(
        parsed.seen
    )
    for tag, name, value in parsed.attributes:
        assert name not in {"src", "srcset", "background", "action"}, (tag, name)
        assert not name.startswith("on"), (tag, name)
        assert "url(" not in value, (tag, name)
    known = urls_in(dict(notice.data)) | urls_in(dict(notice.context))
    for href, text in parsed.links:
        assert href in known
        # A word, not the URL: a sealed token does not fit a phone (the plain part has it).
        assert text
        assert "://" not in text
    assert "://" not in "".join(parsed.text)


@pytest.mark.parametrize(("kind", "language"), EVERY_NOTICE)
def test_html_part_escapes_data(kind: str, language: str) -> None:
    hostile = "<script>alert(1)</script>"
    notice = with_data(view(kind, language), caller_name=hostile, transcript=hostile)
    notice = dataclasses.replace(notice, subscriber_name=hostile)

    html = render(notice).html

    assert "<script>" not in html
    assert "script" not in parse_html(html).seen


@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_romanian_uses_comma_below_letters_never_cedilla(kind: str) -> None:
    rendered = render(view(kind, "ro"))

    assert not set(CEDILLA_LETTERS) & set(everything(rendered))
    assert set("șțăîâ") & set(rendered.text)


# -- optional fields ---------------------------------------------------------------------------

OPTIONAL_FIELDS = {
    "account.created": ("name", "language", "timezone"),
    "call.missed": ("caller_name", "extension", "ring_seconds"),
    "voicemail.received": ("call_id", "caller_name", "transcript"),
    "fax.failed": ("reason",),
    "account.password_changed": ("source_ip", "user_agent"),
    "account.password_reset_requested": ("source_ip",),
    "account.pin_created": ("source_ip",),
    "account.ip_allowlist_changed": ("changed_by", "source_ip"),
    "billing.credit_added": ("method",),
    "billing.payment_confirmed": ("invoice_number",),
}
OPTIONAL = [
    pytest.param(kind, language, id=f"{kind}-{language}")
    for kind in OPTIONAL_FIELDS
    for language in LANGUAGES
]


@pytest.mark.parametrize(("kind", "language"), OPTIONAL)
def test_optional_fields_may_be_none(kind: str, language: str) -> None:
    notice = with_data(view(kind, language), **dict.fromkeys(OPTIONAL_FIELDS[kind]))

    rendered = render(notice)

    assert "None" not in rendered.text
    assert "None" not in rendered.html
    assert rendered.line


@pytest.mark.parametrize(("kind", "language"), OPTIONAL)
def test_optional_fields_may_be_missing(kind: str, language: str) -> None:
    notice = view(kind, language)
    data = {key: value for key, value in notice.data.items() if key not in OPTIONAL_FIELDS[kind]}

    rendered = render(dataclasses.replace(notice, data=data))

    assert rendered.subject
    assert rendered.line


@pytest.mark.parametrize("language", LANGUAGES)
def test_notice_without_a_subscriber_name_greets_plainly(language: str) -> None:
    notice = dataclasses.replace(view("call.missed", language), subscriber_name=None)

    rendered = render(notice)

    assert rendered.text.startswith({"ro": "Bună ziua,\n", "en": "Hello,\n"}[language])
    assert "None" not in rendered.html


# -- times, numbers and money ------------------------------------------------------------------

# The kinds whose notice shows when something happened, in the alphabet's order.
TIMED_KINDS = (
    "account.closed",
    "account.password_changed",
    "account.pin_created",
    "billing.payment_confirmed",
    "call.missed",
    "fax.failed",
    "fax.received",
    "fax.sent",
    "voicemail.received",
)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", TIMED_KINDS)
def test_times_are_shown_in_the_subscriber_zone(kind: str, language: str) -> None:
    rendered = render(view(kind, language))

    assert LOCAL_TIME[language] in rendered.text
    assert LOCAL_TIME[language] in rendered.html
    assert LOCAL_TIME[language] in rendered.line


@pytest.mark.parametrize("language", LANGUAGES)
def test_missed_call_names_the_caller_and_the_called_number(language: str) -> None:
    rendered = render(view("call.missed", language))

    assert "+40 721 555 123" in rendered.html
    assert "+40 721 555 123 (Ion Ionescu)" in rendered.line
    assert "+40 21 555 0100" in rendered.line
    assert "Ion Ionescu" in rendered.subject
    assert "+40215550100" in rendered.subject.replace(" ", "")


@pytest.mark.parametrize(
    ("kind", "language", "amounts"),
    [
        ("usage.daily_limit_exceeded", "ro", ("50,00", "52,35")),
        ("usage.daily_limit_exceeded", "en", ("50.00", "52.35")),
        ("credit.low", "ro", ("3,20", "5,00")),
        ("credit.low", "en", ("3.20", "5.00")),
        ("credit.critical", "ro", ("0,40", "1,00")),
        ("credit.critical", "en", ("0.40", "1.00")),
        ("billing.credit_added", "ro", ("50,00", "53,20")),
        ("billing.credit_added", "en", ("50.00", "53.20")),
        ("billing.payment_confirmed", "ro", ("119,00",)),
        ("billing.payment_confirmed", "en", ("119.00",)),
    ],
)
def test_amounts_are_formatted_for_the_language_with_their_currency(
    kind: str, language: str, amounts: tuple[str, ...]
) -> None:
    rendered = render(view(kind, language))

    for amount in amounts:
        assert amount in rendered.text
        assert amount in rendered.html
    assert amounts[0] in rendered.subject
    assert "RON" in rendered.subject
    other = amounts[0].translate(str.maketrans(",.", ".,"))
    assert other not in rendered.text


@pytest.mark.parametrize(
    ("language", "day"), [("ro", "22 noiembrie 2026"), ("en", "22 November 2026")]
)
def test_daily_limit_names_the_day(language: str, day: str) -> None:
    rendered = render(view("usage.daily_limit_exceeded", language))

    assert day in rendered.text
    assert day in rendered.html
    assert day in rendered.line


# -- voicemail ---------------------------------------------------------------------------------

MISSED = {"ro": "apel nepreluat", "en": "missed call"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_voicemail_of_a_missed_call_says_the_call_was_missed(language: str) -> None:
    rendered = render(view("voicemail.received", language))

    assert MISSED[language] in rendered.subject.lower()
    assert MISSED[language] in rendered.text.lower()
    assert MISSED[language] in rendered.html.lower()
    assert MISSED[language] in rendered.line.lower()
    assert "+40 21 555 0100" in rendered.text  # the number that was called
    assert "Ion Ionescu" in rendered.subject


@pytest.mark.parametrize("language", LANGUAGES)
def test_voicemail_alone_does_not_mention_a_missed_call(language: str) -> None:
    rendered = render(with_extra(view("voicemail.received", language), missed_call=None))

    assert {"ro": "nepreluat", "en": "missed"}[language] not in everything(rendered).lower()
    assert "Ion Ionescu" in rendered.subject
    assert "+40 721 555 123" in rendered.text


VOICEMAIL_AUDIO = {
    "ro": {
        "attached": "mesajul vocal este atașat în format audio",
        "too_large": "prea mare pentru a fi atașată",
        "disabled": "ați ales să nu primiți",
        "unavailable": "nu a putut fi preluată",
    },
    "en": {
        "attached": "is attached as an audio file",
        "too_large": "too large to attach",
        "disabled": "chose not to receive",
        "unavailable": "could not be retrieved",
    },
}
FAX_DOCUMENT = {
    "ro": {
        "attached": "documentul este atașat în format pdf",
        "too_large": "prea mare pentru a fi atașat",
        "disabled": "ați ales să nu primiți",
        "unavailable": "nu a putut fi preluat",
    },
    "en": {
        "attached": "attached as a pdf",
        "too_large": "too large to attach",
        "disabled": "chose not to receive",
        "unavailable": "could not be retrieved",
    },
}
STATUSES = ("attached", "too_large", "disabled", "unavailable")


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(
    ("kind", "wording"),
    [("voicemail.received", VOICEMAIL_AUDIO), ("fax.received", FAX_DOCUMENT)],
)
def test_each_attachment_status_has_its_own_wording(
    kind: str, wording: dict[str, dict[str, str]], language: str, status: str
) -> None:
    rendered = render(with_attachment(view(kind, language), status=status))
    text, html = rendered.text.lower(), rendered.html.lower()

    assert wording[language][status] in text
    assert wording[language][status] in html
    for other in STATUSES:
        if other != status:
            assert wording[language][other] not in text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["voicemail.received", "fax.received"])
def test_too_large_attachment_points_at_the_portal(kind: str, language: str) -> None:
    notice = with_attachment(view(kind, language), status="too_large")
    portal = notice.context["portal_url"]

    rendered = render(notice)

    assert portal in rendered.text
    assert (portal, PORTAL[language]) in parse_html(rendered.html).links


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", ["voicemail.received", "fax.received"])
def test_too_large_attachment_without_a_portal_address_names_the_portal(
    kind: str, language: str
) -> None:
    notice = with_extra(with_attachment(view(kind, language), status="too_large"), portal_url="")

    rendered = render(notice)

    portal = {"ro": "portalul de client", "en": "customer portal"}[language]
    assert portal in rendered.text
    assert portal in rendered.html
    # No portal link; only the preference page's and the category's one-click link.
    preferences = notice.context["preferences_url"]
    assert parse_html(rendered.html).links == [
        (preferences, PREFERENCES[language]),
        (notice.context["unsubscribe_url"], UNSUBSCRIBE[language]),
    ]


@pytest.mark.parametrize("language", LANGUAGES)
def test_voicemail_shows_the_transcript_when_there_is_one(language: str) -> None:
    notice = view("voicemail.received", language)
    transcript = notice.data["transcript"]

    assert transcript in render(notice).text
    assert transcript in render(notice).html
    without = render(with_data(notice, transcript=None))
    assert {"ro": "Transcriere", "en": "Transcript"}[language] not in without.text


@pytest.mark.parametrize(
    ("language", "seconds", "shown"),
    [
        ("ro", 1, "1 secundă"),
        ("ro", 14, "14 secunde"),
        ("ro", 45, "45 de secunde"),
        ("ro", 125, "2 minute și 5 secunde"),
        ("en", 1, "1 second"),
        ("en", 125, "2 minutes 5 seconds"),
    ],
)
def test_voicemail_duration_reads_naturally(language: str, seconds: int, shown: str) -> None:
    rendered = render(with_data(view("voicemail.received", language), duration_seconds=seconds))

    assert shown in rendered.text
    assert shown in rendered.html


# -- fax ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "language", "pages", "shown"),
    [
        ("fax.received", "ro", 1, "(1 pagină)"),
        ("fax.sent", "ro", 3, "(3 pagini)"),
        ("fax.sent", "ro", 20, "(20 de pagini)"),
        ("fax.received", "en", 1, "(1 page)"),
        ("fax.sent", "en", 3, "(3 pages)"),
    ],
)
def test_fax_subject_names_the_remote_number_and_the_pages(
    kind: str, language: str, pages: int, shown: str
) -> None:
    rendered = render(with_data(view(kind, language), pages=pages))

    assert "+40 21 555 0199" in rendered.subject
    assert shown in rendered.subject


@pytest.mark.parametrize("language", LANGUAGES)
def test_failed_fax_gives_the_reason(language: str) -> None:
    rendered = render(view("fax.failed", language))

    assert "+40 21 555 0199" in rendered.subject
    assert "busy" in rendered.text
    assert "busy" in rendered.html


# -- security notices --------------------------------------------------------------------------

SECURITY_KINDS = (
    "account.created",
    "account.password_changed",
    "account.password_reset_requested",
    "account.pin_created",
)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", SECURITY_KINDS)
def test_no_password_or_pin_is_ever_shown(kind: str, language: str) -> None:
    notice = with_data(
        view(kind, language), password="hunter2-S3cret", new_password="hunter3-S3cret", pin="482913"
    )

    rendered = render(notice)
    shown = everything(rendered)

    for secret in ("hunter2-S3cret", "hunter3-S3cret", "482913"):
        assert secret not in shown
    assert not SECRET_LABEL.search(rendered.text)
    assert not SECRET_LABEL.search("".join(parse_html(rendered.html).text))


@pytest.mark.parametrize("language", LANGUAGES)
def test_password_change_says_when_and_from_where(language: str) -> None:
    rendered = render(view("account.password_changed", language))

    assert "198.51.100.23" in rendered.text
    assert "198.51.100.23" in rendered.html
    assert {"ro": "Dacă nu dvs. ați", "en": "If you did not"}[language] in rendered.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_password_reset_gives_a_direct_link_its_expiry_and_says_to_ignore_it(
    language: str,
) -> None:
    notice = view("account.password_reset_requested", language)
    url = notice.data["reset_url"]

    rendered = render(notice)

    assert url in rendered.text.splitlines()
    preferences = notice.context["preferences_url"]
    links = parse_html(rendered.html).links
    assert links == [(url, RESET[language]), (preferences, PREFERENCES[language])]
    # expires_at is 11:05 UTC: 13:05 in Bucharest.
    expiry = {"ro": "22 noiembrie 2026, 13:05", "en": "22 November 2026, 13:05"}[language]
    assert expiry in rendered.text
    assert expiry in rendered.html
    ignore = {"ro": "ignorați acest email", "en": "ignore this email"}[language]
    assert ignore in rendered.text
    assert ignore in rendered.html
    assert url not in rendered.line


@pytest.mark.parametrize("language", LANGUAGES)
def test_pin_notice_says_a_pin_was_created_without_its_value(language: str) -> None:
    rendered = render(view("account.pin_created", language))

    assert "PIN" in rendered.subject
    assert {"ro": "Dacă nu dvs. ați", "en": "If you did not"}[language] in rendered.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_allowlist_change_lists_added_and_removed_addresses(language: str) -> None:
    notice = with_extra(
        view("account.ip_allowlist_changed", language),
        added=["198.51.100.0/24"],
        removed=["192.0.2.7"],
    )

    rendered = render(notice)

    for address in ("198.51.100.0/24", "192.0.2.7"):
        assert address in rendered.text
        assert f"<li>{address}</li>" in rendered.html
        assert address in rendered.line
    removed = {"ro": "eliminate", "en": "Removed"}[language]
    assert removed in rendered.text
    assert removed not in render(view("account.ip_allowlist_changed", language)).text


@pytest.mark.parametrize("language", LANGUAGES)
def test_email_change_tells_each_address_its_own_story(language: str) -> None:
    notice = view("account.email_changed", language)

    to_old = render(with_extra(notice, recipient_role="old"))
    to_new = render(with_extra(notice, recipient_role="new"))

    assert "ana.new@example.com" in to_old.text
    assert "ana.old@example.com" in to_old.text
    now_yours = {"ro": "este acum adresa de email", "en": "is now the email address"}[language]
    assert now_yours in to_new.text
    assert now_yours in to_new.html
    assert now_yours not in to_old.text
    assert to_old.text != to_new.text


# -- credit and billing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "days", "shown"),
    [
        ("ro", 1, "aproximativ 1 zi."),
        ("ro", 3, "aproximativ 3 zile."),
        ("ro", 19, "aproximativ 19 zile."),
        ("ro", 20, "aproximativ 20 de zile."),
        ("ro", 101, "aproximativ 101 zile."),
        ("ro", 120, "aproximativ 120 de zile."),
        ("ro", 0, "mai puțin de o zi"),
        ("en", 1, "about 1 day of credit left"),
        ("en", 3, "about 3 days of credit left"),
        ("en", 0, "less than a day of credit left"),
    ],
)
@pytest.mark.parametrize("kind", ["credit.low", "credit.critical"])
def test_days_of_credit_left_use_the_right_plural(
    kind: str, language: str, days: int, shown: str
) -> None:
    rendered = render(with_extra(view(kind, language), days_left=days))

    assert shown in rendered.text
    assert shown in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_unknown_days_left_are_not_guessed(language: str) -> None:
    rendered = render(with_extra(view("credit.low", language), days_left=None))

    left = {"ro": "vă mai ajunge", "en": "of credit left"}[language]
    assert left not in rendered.text
    assert left not in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_critical_credit_says_service_cannot_continue(language: str) -> None:
    rendered = render(view("credit.critical", language))

    phrase = {
        "ro": "suma din cont este insuficientă pentru continuarea serviciului",
        "en": "insufficient to continue service",
    }[language]
    assert phrase in rendered.subject.lower()
    assert phrase in rendered.text.lower()
    assert phrase in rendered.html.lower()


@pytest.mark.parametrize("language", LANGUAGES)
def test_payment_confirmation_names_the_payment_and_the_invoice(language: str) -> None:
    notice = view("billing.payment_confirmed", language)

    rendered = render(notice)
    without_invoice = render(with_data(notice, invoice_number=None))

    for shown in ("pay_8842", "VOIP-2026-0042"):
        assert shown in rendered.text
        assert shown in rendered.html
    invoice = {"ro": "factur", "en": "invoice"}[language]
    assert invoice not in everything(without_invoice).lower()


@pytest.mark.parametrize("language", LANGUAGES)
def test_closed_account_confirms_the_closure_and_its_date(language: str) -> None:
    rendered = render(view("account.closed", language))

    assert {"ro": "închis", "en": "closed"}[language] in rendered.subject
    assert LOCAL_TIME[language] in rendered.text


# -- overrides ---------------------------------------------------------------------------------


def every_sample() -> list[NoticeView]:
    return [view(kind, language) for kind in NOTICE_KINDS for language in LANGUAGES]


def test_packaged_templates_all_pass_the_check() -> None:
    assert Renderer(SENDER).check(every_sample()) == []


def test_override_folder_wins_over_the_packaged_template(tmp_path: Path) -> None:
    (tmp_path / "call.missed.en.txt").write_text(
        "{% set subject %}Custom: {{ data.caller_number }}{% endset %}\n"
        "{% set line %}custom line{% endset %}\n"
        "Our own wording.\n",
        encoding="utf-8",
    )
    renderer = Renderer(SENDER, override_folder=tmp_path)

    english = renderer.render(view("call.missed", "en"))
    romanian = renderer.render(view("call.missed", "ro"))

    assert english.subject == "Custom: +40721555123"
    assert english.line == "custom line"
    assert english.text == "Our own wording.\n"
    assert "You have a missed call." in english.html  # the packaged HTML still serves
    assert "Aveți un apel nepreluat." in romanian.text


@pytest.mark.parametrize(
    ("name", "source"),
    [
        (
            "call.missed.en.txt",
            "{% set subject %}x{% endset %}{% set line %}x{% endset %}{{ data.no_such_field }}\n",
        ),
        ("call.missed.en.txt", "{% set subject %}x{% endset %}{% if %}\n"),
        (
            "call.missed.en.html",
            '{% extends "layout.html" %}{% block content %}{{ extra.nope }}{% endblock %}\n',
        ),
    ],
    ids=["undefined-field", "syntax-error", "html-undefined-extra"],
)
def test_check_reports_a_broken_override_by_name(tmp_path: Path, name: str, source: str) -> None:
    (tmp_path / name).write_text(source, encoding="utf-8")

    problems = Renderer(SENDER, override_folder=tmp_path).check(every_sample())

    assert len(problems) == 1
    assert "call.missed.en" in problems[0]
