"""Caller IDs as a PBX has them (SPEC §4): every one accepted, numbers normalised to E.164
when they are numbers, withheld ones shown as such, the rest shown as given and escaped.

A missed call refused is a missed call lost (a PBX does not retry a 4xx), so the only
values refused are those that cannot be a caller ID at all."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from notifyd.catalogue.events import InvalidEvent, parse_event
from notifyd.catalogue.fields import CALLER_ID_MAX
from notifyd.catalogue.locale import LANGUAGES
from notifyd.catalogue.samples import sample_event
from notifyd.mail.caller_ids import phone
from notifyd.mail.previews import sample_view
from notifyd.mail.rendering import NoticeView, Renderer
from notifyd.model import DigestItem
from notifyd.rules.digests import totals

NOW = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
RENDERER = Renderer("Operator <notificari@voip.example>")
WITHHELD_LABEL = {"ro": "Număr ascuns", "en": "Withheld number"}
# In a sentence after "from" (the subject, a digest line): words, not the label.
WITHHELD_WORDS = {"ro": "de la număr ascuns", "en": "from a withheld number"}

# Where each event type carries the number of the other party.
OTHER_PARTY = {
    "call.missed": "caller_number",
    "voicemail.received": "caller_number",
    "fax.received": "remote_number",
    "fax.sent": "remote_number",
    "fax.failed": "remote_number",
}
EVERY_FIELD = [pytest.param(kind, field, id=kind) for kind, field in OTHER_PARTY.items()]

# What Asterisk's CALLERID(num) and FreeSWITCH's caller_id_number carry, and how it is kept.
AS_A_PBX_SENDS = [
    ("anonymous", "anonymous"),
    ("Anonymous", "anonymous"),
    ("Restricted", "restricted"),
    ("unknown", "unknown"),
    ("", ""),
    ("   ", ""),
    ("Ion Popescu", "Ion Popescu"),
    ("RECEPTIE", "RECEPTIE"),
    ("sip:101@pbx.example.com", "sip:101@pbx.example.com"),
    ("sip:anonymous@anonymous.invalid", "sip:anonymous@anonymous.invalid"),
    ("*86", "*86"),
    ("#31#0721555123", "#31#0721555123"),
    ("101", "101"),
    ("0721 555 123", "0721 555 123"),
    ("0040721555123", "0040721555123"),
    ("+40 (21) 555-0100", "+40215550100"),  # a number: normalised to E.164
    ("+4072155512a", "+4072155512a"),  # not a number: as given
    ("+40 72", "+40 72"),  # too short to be a number anywhere: as given
    ("Ion\r\nBcc: x", "Ion Bcc: x"),  # control characters are cleaned, as in names
    ("+40721\x00555123", "+40721555123"),  # cleaned, then a number
    ("\x07", ""),
]
WITHHELD = [
    "",
    "anonymous",
    "Anonymous",
    "Restricted",
    "unknown",
    "sip:anonymous@anonymous.invalid",
]


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def event_with(kind: str, **data: Any) -> dict[str, Any]:
    return sample_event(kind, account_id="acc-1001", now=NOW, **data)


def stored(kind: str, field: str, value: Any) -> str:
    event = parse_event(body(event_with(kind, **{field: value})))
    result = getattr(event.data, field)
    assert isinstance(result, str)
    return result


def view_with(kind: str, language: str, **data: Any) -> NoticeView:
    sample = sample_view(kind, language, NOW)
    assert isinstance(sample, NoticeView)
    return dataclasses.replace(sample, data={**sample.data, **data})


def reparsed(notice: NoticeView) -> EmailMessage:
    raw = RENDERER.message(notice, NOW).as_bytes()
    message = email.message_from_bytes(raw, policy=email.policy.strict)
    assert isinstance(message, EmailMessage)
    return message


# -- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "field"), EVERY_FIELD)
@pytest.mark.parametrize(("given_value", "kept"), AS_A_PBX_SENDS)
def test_every_caller_id_a_pbx_sends_is_accepted(
    kind: str, field: str, given_value: str, kept: str
) -> None:
    assert stored(kind, field, given_value) == kept


@pytest.mark.parametrize(("kind", "field"), EVERY_FIELD)
def test_a_null_caller_id_is_a_withheld_one(kind: str, field: str) -> None:
    assert stored(kind, field, None) == ""


@pytest.mark.parametrize(("kind", "field"), EVERY_FIELD)
def test_a_caller_id_written_as_a_json_number_is_kept_as_its_digits(kind: str, field: str) -> None:
    assert stored(kind, field, 101) == "101"


@pytest.mark.parametrize("called", ["101", "s", "sip:sales@pbx.example.com", "0215550100"])
def test_the_called_number_may_be_an_extension_a_did_or_a_sip_uri(called: str) -> None:
    assert stored("call.missed", "called_number", called) == called


def test_the_called_number_is_normalised_when_it_is_a_number() -> None:
    assert stored("call.missed", "called_number", "+40 21 555 0100") == "+40215550100"


# -- refused: only what cannot be a caller ID --------------------------------------------------


def test_a_missing_caller_number_is_still_a_missing_field() -> None:
    # A key left out is an integration mistake (a misspelt key), not a caller without an ID.
    event = event_with("call.missed")
    del event["data"]["caller_number"]

    with pytest.raises(InvalidEvent) as caught:
        parse_event(body(event))

    assert caught.value.fields == {"data.caller_number": "Field required"}


@pytest.mark.parametrize(("kind", "field"), EVERY_FIELD)
@pytest.mark.parametrize("value", [True, 1.5, ["101"], {"num": "101"}, "1" * (CALLER_ID_MAX + 1)])
def test_what_cannot_be_a_caller_id_is_refused_on_its_field(
    kind: str, field: str, value: Any
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body(event_with(kind, **{field: value})))

    assert list(caught.value.fields) == [f"data.{field}"]


@pytest.mark.parametrize("called", ["", "  ", "\x00"])
def test_an_empty_called_number_is_refused(called: str) -> None:
    # The PBX always knows what was dialled (Asterisk's EXTEN, FreeSWITCH's
    # destination_number): an empty one is a broken integration, said at once.
    with pytest.raises(InvalidEvent) as caught:
        parse_event(body(event_with("call.missed", called_number=called)))

    assert list(caught.value.fields) == ["data.called_number"]


# -- shown -------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "field"), EVERY_FIELD)
@pytest.mark.parametrize("withheld", WITHHELD)
def test_a_withheld_number_is_shown_as_such_everywhere(
    kind: str, field: str, withheld: str, language: str
) -> None:
    notice = view_with(kind, language, **{field: stored(kind, field, withheld)}, caller_name=None)

    rendered = RENDERER.render(notice)

    for part in ("subject", "line", "text", "html"):
        shown = getattr(rendered, part)
        assert WITHHELD_LABEL[language] in shown or WITHHELD_WORDS[language] in shown, (
            part,
            shown,
        )
        assert f"from {WITHHELD_LABEL['en']}" not in shown, (part, shown)
        assert f"de la {WITHHELD_LABEL['ro']}" not in shown, (part, shown)
        if withheld:
            assert withheld not in shown, (part, shown)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("kind", "field"), EVERY_FIELD)
@pytest.mark.parametrize("value", ["sip:101@pbx.example.com", "RECEPTIE", "*86#", "2001"])
def test_a_caller_id_that_is_not_a_number_is_shown_as_given(
    kind: str, field: str, value: str, language: str
) -> None:
    rendered = RENDERER.render(view_with(kind, language, **{field: value}, caller_name=None))

    for part in ("subject", "line", "text", "html"):
        assert value in getattr(rendered, part), part
    assert WITHHELD_LABEL[language] not in rendered.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_called_number_that_is_an_extension_is_shown_as_given(language: str) -> None:
    rendered = RENDERER.render(view_with("call.missed", language, called_number="sip:sales@pbx"))

    assert "sip:sales@pbx" in rendered.subject
    assert "sip:sales@pbx" in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_voicemail_of_a_missed_call_shows_a_called_extension_as_given(language: str) -> None:
    notice = view_with("voicemail.received", language, caller_number="", caller_name=None)
    notice = dataclasses.replace(
        notice,
        context={
            **notice.context,
            "missed_call": {"started_at": "2026-11-22T10:04:00+00:00", "called_number": "101"},
        },
    )

    rendered = RENDERER.render(notice)

    assert WITHHELD_WORDS[language] in rendered.subject
    assert rendered.subject.endswith(" 101")


@settings(max_examples=150, deadline=None)
@given(value=st.text(max_size=CALLER_ID_MAX), language=st.sampled_from(LANGUAGES))
def test_any_text_up_to_the_limit_is_accepted_and_rendered_escaped(
    value: str, language: str
) -> None:
    kept = stored("call.missed", "caller_number", value)
    notice = view_with("call.missed", language, caller_number=kept, caller_name=None)

    rendered = RENDERER.render(notice)
    message = reparsed(notice)  # a sound message: no header injected, strict policy parses

    shown = phone(kept, language)
    assert shown in rendered.text
    assert str(escape(shown)) in rendered.html
    assert "\n" not in str(message["Subject"])
    in_subject = WITHHELD_WORDS[language] if shown == WITHHELD_LABEL[language] else shown
    assert " ".join(in_subject.split()) in " ".join(str(message["Subject"]).split())


# -- digests -----------------------------------------------------------------------------------


def test_withheld_callers_are_not_counted_as_one_caller() -> None:
    # Three people who withheld their number are not "3 from Withheld number".
    items = [
        DigestItem("call.missed", NOW, {"caller_number": value})
        for value in ("", "anonymous", "restricted", "sip:anonymous@anonymous.invalid", "")
    ] + [DigestItem("call.missed", NOW, {"caller_number": "sip:101@pbx.example.com"})] * 2

    assert totals(items)["callers"] == [{"number": "sip:101@pbx.example.com", "count": 2}]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_digest_names_a_frequent_caller_that_is_not_a_number_as_given(language: str) -> None:
    notice = sample_view("digest", language, NOW)
    assert isinstance(notice, NoticeView)
    context = {**notice.context}
    context["totals"] = {**context["totals"], "callers": [{"number": "RECEPTIE", "count": 2}]}

    rendered = RENDERER.render(dataclasses.replace(notice, context=context))

    assert "RECEPTIE" in rendered.text
    assert "RECEPTIE" in rendered.html
