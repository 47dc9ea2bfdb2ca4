"""Renderer: notice -> multipart email, per language and zone, safe against odd data."""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import replace
from email.message import EmailMessage
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pytest

from notifyd.delivery.send import as_rendered
from notifyd.mail.rendering import Renderer, local_datetime
from notifyd.storage.notices import ClaimedNotice
from tests.unit.rendering_support import (
    MESSAGE_ID,
    NOW,
    SENDER,
    notice,
)


def render(claimed: ClaimedNotice) -> EmailMessage:
    return Renderer(SENDER).message(claimed, NOW)


def reparse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.strict)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(message: EmailMessage) -> str:
    part = reparse(message).get_body(preferencelist=("plain",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def html_of(message: EmailMessage) -> str:
    part = reparse(message).get_body(preferencelist=("html",))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


class StrictHTML(HTMLParser):
    """Records tags; an end tag that does not close the innermost open element is an error."""

    VOID = frozenset({"meta", "br", "img", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.seen: list[str] = []
        self.doctype: str | None = None
        self.text: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close {self.stack[-1:] or 'anything'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(markup: str) -> StrictHTML:
    parser = StrictHTML()
    parser.feed(markup)
    parser.close()
    return parser


# -- structure and headers ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["call.missed", "account.created"])
@pytest.mark.parametrize("language", ["ro", "en"])
def test_message_is_multipart_alternative_with_text_then_html(kind: str, language: str) -> None:
    message = render(notice(kind, language))

    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)


def test_headers_identify_the_notice_and_the_sender() -> None:
    message = reparse(render(notice("call.missed", "en")))

    assert message["From"] == SENDER
    assert message["To"] == "ana@example.com"
    assert message["Message-ID"] == MESSAGE_ID
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert email.utils.parsedate_to_datetime(message["Date"]) == NOW


def test_content_language_header_names_the_notice_language() -> None:
    assert render(notice("call.missed", "ro"))["Content-Language"] == "ro"


@pytest.mark.parametrize("kind", ["call.missed", "account.created"])
@pytest.mark.parametrize("language", ["ro", "en"])
def test_message_reparses_under_the_strict_policy(kind: str, language: str) -> None:
    message = render(notice(kind, language))

    parsed = reparse(message)

    assert parsed["Subject"] == message["Subject"]
    assert parsed.defects == []
    assert all(part.defects == [] for part in parsed.walk())


# -- missed call -------------------------------------------------------------------------------


def test_missed_call_subject_names_the_caller_in_romanian() -> None:
    message = render(notice("call.missed", "ro"))

    assert message["Subject"] == "Apel nepreluat de la Ion Ionescu pe +40 21 555 0100"


def test_missed_call_subject_names_the_caller_in_english() -> None:
    message = render(notice("call.missed", "en"))

    assert message["Subject"] == "Missed call from Ion Ionescu on +40 21 555 0100"


def test_missed_call_subject_falls_back_to_the_number_without_a_name() -> None:
    message = render(notice("call.missed", "en", caller_name=None))

    assert message["Subject"] == "Missed call from +40 721 555 123 on +40 21 555 0100"


def test_missed_call_text_lists_the_call_in_romanian_with_diacritics() -> None:
    text = text_of(render(notice("call.missed", "ro")))

    assert "Aveți un apel nepreluat." in text
    assert "De la: +40 721 555 123 (Ion Ionescu)" in text
    assert "Către: +40 21 555 0100, interior 101" in text
    assert "A sunat: 25 de secunde" in text
    # Comma-below ș and ț (U+0219, U+021B), not the cedilla look-alikes.
    assert "\u021b" in text
    assert "\u0219" in text
    assert "\u0163" not in text
    assert "\u015f" not in text


def test_missed_call_shows_the_local_time_in_the_subscriber_zone() -> None:
    # started_at 10:00 UTC is 12:00 in Bucharest (EET, UTC+2) in November.
    ro = text_of(render(notice("call.missed", "ro")))
    en = text_of(render(notice("call.missed", "en")))

    assert "Data și ora: 22 noiembrie 2026, 12:00" in ro
    assert "22 November 2026" in en
    assert "22 November 2026, 12:00" in en
    assert "10:00" not in ro + en


def test_missed_call_local_time_follows_summer_time() -> None:
    # 10:00 UTC on 1 July is 13:00 in Bucharest (EEST, UTC+3).
    text = text_of(render(notice("call.missed", "ro", started_at="2026-07-01T10:00:00Z")))

    assert "Data și ora: 1 iulie 2026, 13:00" in text


def test_missed_call_local_time_uses_the_notice_zone() -> None:
    # 10:00 UTC on 22 November is 05:00 in New York (EST, UTC-5).
    text = text_of(render(notice("call.missed", "en", timezone="America/New_York")))

    assert "Date and time: 22 November 2026, 05:00" in text
    assert "12:00" not in text


def test_missed_call_html_shows_the_same_local_time() -> None:
    html = html_of(render(notice("call.missed", "ro")))

    assert "22 noiembrie 2026, 12:00" in html


def test_html_escapes_a_hostile_caller_name() -> None:
    message = render(notice("call.missed", "en", caller_name="<script>alert(1)</script>"))
    html = html_of(message)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "script" not in parse_html(html).seen
    # The subject is plain text: shown as written, not escaped.
    assert message["Subject"] == "Missed call from <script>alert(1)</script> on +40 21 555 0100"


def test_line_breaks_in_data_cannot_add_headers() -> None:
    message = render(notice("call.missed", "en", caller_name="Ion\r\nBcc: victim@example.com"))
    parsed = reparse(message)

    assert parsed["Bcc"] is None
    assert "\n" not in parsed["Subject"]
    assert "\r" not in parsed["Subject"]


def test_non_ascii_caller_name_survives_in_the_subject() -> None:
    message = render(notice("call.missed", "ro", caller_name="Ștefan Țăranu"))

    assert reparse(message)["Subject"] == "Apel nepreluat de la Ștefan Țăranu pe +40 21 555 0100"


# -- welcome -----------------------------------------------------------------------------------


def test_welcome_names_the_username_in_romanian() -> None:
    message = render(notice("account.created", "ro"))
    text = text_of(message)

    assert message["Subject"] == "Bun venit! Contul dvs. a fost creat"
    assert "Bună ziua, Ana Popescu," in text
    assert "Nume de utilizator: ana.popescu" in text
    assert "ana.popescu" in html_of(message)


def test_welcome_names_the_username_in_english() -> None:
    message = render(notice("account.created", "en"))
    text = text_of(message)

    assert message["Subject"] == "Welcome! Your account has been created"
    assert "Hello Ana Popescu," in text
    assert "User name: ana.popescu" in text
    assert "<strong>ana.popescu</strong>" in html_of(message)


@pytest.mark.parametrize("language", ["ro", "en"])
def test_welcome_contains_no_password(language: str) -> None:
    message = render(notice("account.created", language, password="hunter2-S3cret"))

    assert "hunter2-S3cret" not in message.as_string()
    assert "hunter2-S3cret" not in text_of(message)
    assert "hunter2-S3cret" not in html_of(message)


# -- HTML part ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["call.missed", "account.created"])
@pytest.mark.parametrize("language", ["ro", "en"])
def test_html_part_is_well_formed(kind: str, language: str) -> None:
    message = render(notice(kind, language))

    parsed = parse_html(html_of(message))

    assert parsed.errors == []
    assert parsed.stack == []
    assert parsed.doctype is not None
    assert parsed.doctype.lower() == "doctype html"
    assert parsed.seen[:2] == ["html", "head"]
    assert f'lang="{language}"' in html_of(message)


# -- cost: a message formats each distinct value once ---------------------------------------


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The numbers `phonenumbers.parse` is asked to parse from here on."""
    import phonenumbers

    asked: list[str] = []
    real_parse = phonenumbers.parse

    def counting_parse(number: str, region: str | None = None) -> Any:
        asked.append(number)
        return real_parse(number, region)

    monkeypatch.setattr(phonenumbers, "parse", counting_parse)
    return asked


def test_a_missed_call_parses_each_phone_number_once(parsed: list[str]) -> None:
    # The subject, the digest line, the text and the HTML part each show both numbers:
    # without the cache that is eight parses a message, a tenth of delivery's CPU.
    caller, called = "+40722000901", "+40215550901"  # seen by no other test
    message = render(
        notice("call.missed", "ro", caller_name=None, caller_number=caller, called_number=called)
    )
    again = render(
        notice("call.missed", "en", caller_name=None, caller_number=caller, called_number=called)
    )

    assert sorted(parsed) == sorted([caller, called])
    assert message["Subject"] == "Apel nepreluat de la +40 722 000 901 pe +40 21 555 0901"
    assert again["Subject"] == "Missed call from +40 722 000 901 on +40 21 555 0901"


def test_a_number_validated_at_intake_is_not_parsed_again_for_its_notice(
    parsed: list[str],
) -> None:
    import json

    from notifyd.catalogue.events import parse_event
    from notifyd.catalogue.samples import sample_event

    caller, called = "+40722000902", "+40215550902"  # seen by no other test
    body = sample_event("call.missed", "acc-1001", caller_number=caller, called_number=called)
    event = parse_event(json.dumps(body).encode())
    data = {**event.data.model_dump(), "caller_name": None}
    message = render(notice("call.missed", "en", **data))

    assert sorted(parsed) == sorted([caller, called])
    assert message["Subject"] == "Missed call from +40 722 000 902 on +40 21 555 0902"


def test_rendering_does_not_walk_chained_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    # Jinja's default template globals are a ChainMap over the environment's, walked twice
    # per template rendered (a sixth of a message's rendering): this renderer's are a dict.
    import collections

    renderer = Renderer(SENDER)
    renderer.mail(notice("call.missed", "ro"), NOW)  # templates loaded
    walks: list[int] = []
    real_iter = collections.ChainMap.__iter__

    def counting_iter(self: collections.ChainMap[Any, Any]) -> Any:
        walks.append(1)
        return real_iter(self)

    monkeypatch.setattr(collections.ChainMap, "__iter__", counting_iter)
    message = email.message_from_bytes(renderer.mail(notice("call.missed", "ro"), NOW))

    assert walks == []
    assert message["Subject"] == "Apel nepreluat de la Ion Ionescu pe +40 21 555 0100"


def test_templates_keep_jinjas_own_globals(tmp_path: Any) -> None:
    # range, namespace and dict come from Jinja's environment globals.
    (tmp_path / "call.missed.en.txt").write_text(
        "{% set subject %}{% for n in range(2) %}{{ n }}{% endfor %}{% endset %}"
        "{% set ns = namespace(x=dict(a=1)) %}{{ ns.x.a }}\n"
    )
    renderer = Renderer(SENDER, override_folder=tmp_path)

    rendered = renderer.render(notice("call.missed", "en"))

    assert rendered.subject == "01"
    assert rendered.text == "1\n"


def test_messages_of_one_second_share_their_date_header() -> None:
    renderer = Renderer(SENDER)
    first = NOW.replace(microsecond=100_000)
    dates = [
        email.message_from_bytes(renderer.mail(notice("call.missed", "en"), moment))["Date"]
        for moment in (first, first.replace(microsecond=900_000), first.replace(second=1))
    ]

    assert dates[0] == dates[1] == email.utils.format_datetime(NOW)
    assert dates[2] == email.utils.format_datetime(NOW.replace(second=1))


def test_the_layout_and_footer_are_resolved_once_per_renderer_and_anew_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not asked of Jinja's cache on every render (a lock and an LRU scan each); a reload
    builds a new Renderer, which reads an operator's changed layout and footer."""
    packaged = resources.files("notifyd") / "templates"
    for name in ("layout.html", "footer.en.txt"):
        text = (packaged / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(
            text.replace("</body>", "<p>first</p></body>")
            if name.endswith("html")
            else text + "first\n"
        )
    asked: list[str] = []
    original = jinja2.Environment.get_template

    def counted(self: jinja2.Environment, name: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(str(name))
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "get_template", counted)
    welcome = notice("account.created", "en")
    renderer = Renderer(SENDER, override_folder=tmp_path)
    for _ in range(3):
        assert "first" in html_of(renderer.message(welcome, NOW))
        assert "first" in text_of(renderer.message(welcome, NOW))
    assert sorted(asked) == sorted(
        ["account.created.en.txt", "account.created.en.html", "layout.html", "footer.en.txt"]
    )
    for name in ("layout.html", "footer.en.txt"):
        (tmp_path / name).write_text(
            (tmp_path / name).read_text(encoding="utf-8").replace("first", "second")
        )
    assert "first" in html_of(renderer.message(welcome, NOW))
    reloaded = Renderer(SENDER, override_folder=tmp_path)
    assert "second" in html_of(reloaded.message(welcome, NOW))
    assert "second" in text_of(reloaded.message(welcome, NOW))


def test_a_claimed_notice_is_rendered_with_its_own_fields_and_the_context_given() -> None:
    """delivery/send.py hands the renderer a NoticeView of the claimed notice, not a copy
    of it: every field the templates read is the notice's, none a preview's default."""
    claimed = replace(
        notice("call.missed", "en", timezone="America/New_York"),
        recipient="someone.else@client.example",
        message_id="<other@voip.example>",
        subscriber_name=None,
        subscriber_username="other.user",
    )
    context = {"preferences_url": "https://notices.voip.example/v1/preferences/t"}
    view = as_rendered(claimed, context)
    assert view.context == context
    read = ("kind", "language", "data", "timezone", "recipient", "message_id")
    for name in (*read, "subscriber_name", "subscriber_username"):
        assert getattr(view, name) == getattr(claimed, name), name
    renderer = Renderer(SENDER)
    assert renderer.render(view) == renderer.render(replace(claimed, context=context))


@pytest.mark.parametrize(
    ("value", "zone", "shown"),
    [
        ("0001-01-01T00:00:00+14:00", "Europe/Bucharest", "1 January 1, 00:00 (UTC+14:00)"),
        ("9999-12-31T23:59:00-05:30", "Europe/Bucharest", "31 December 9999, 23:59 (UTC-05:30)"),
        ("9999-12-31T23:00:00Z", "Asia/Tokyo", "31 December 9999, 23:00 (UTC)"),
        ("2026-11-22T08:15:00Z", "Asia/Tokyo", "22 November 2026, 17:15 (Asia/Tokyo)"),
    ],
)
def test_a_time_past_the_calendar_in_the_zone_is_shown_as_sent(
    value: str, zone: str, shown: str
) -> None:
    assert local_datetime(value, zone, "en") == shown
