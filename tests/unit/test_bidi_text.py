"""Bidirectional controls in caller data: an override (U+202E) left open in a caller name
reverses everything the template writes after it on that line, the caller's number and the
called number included ("Missed call from Ion <RLO>... on +40 21 555 0100" is shown with the
number backwards). Each value that carries one is isolated (FSI ... PDI), which ends every
embedding and override it opened, so only the caller's own text is affected."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import markupsafe
import pytest

from notifyd.mail.rendering import Renderer, _isolate_bidi
from tests.unit.rendering_support import NOW, SENDER, bidi_open_at_line_ends, notice

FSI, PDI = "\u2068", "\u2069"
OPENERS = "\u202a\u202b\u202d\u202e\u2066\u2067\u2068"
NAMES = [
    "Ion \u202egnp.exe",  # an override left open
    "Ion \u2067x",  # an isolate left open: our end would close it, not ours
    "x\u2069 \u202eevil",  # an end that closes nothing: it would close ours
    "\u202egnp\u202c ok \u2066\u202ex",  # closed, then open inside an open isolate
]


def _parts(language: str, name: str) -> tuple[str, str, str]:
    data = Renderer(SENDER).mail(notice("call.missed", language, caller_name=name), NOW)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    bodies = {
        part.get_content_subtype(): str(part.get_content())
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }
    return str(message["Subject"]), bodies["plain"], bodies["html"]


@pytest.mark.parametrize("language", ["ro", "en"])
@pytest.mark.parametrize("name", NAMES)
def test_bidirectional_controls_in_a_caller_name_end_where_the_name_ends(
    language: str, name: str
) -> None:
    for text in _parts(language, name):
        assert "\u202e" in text or "\u2067" in text
        assert bidi_open_at_line_ends(text) == []


def test_a_name_without_bidirectional_controls_is_written_unchanged() -> None:
    for text in _parts("en", "Ion Ionescu"):
        assert not set(text) & set(OPENERS + PDI)


def test_values_without_controls_are_written_as_given() -> None:
    """The finalize step's shortcut for ASCII (no bidi control is ASCII) and its full check
    for the rest: clean values are the same objects, Markup stays Markup, a control is
    still isolated whatever else the value holds."""
    plain, markup, accented = "Ion Popescu", markupsafe.Markup("<b>x</b>"), "Lucrări"
    for value in (plain, markup, accented, 5, None):
        assert _isolate_bidi(value) is value
    assert _isolate_bidi("Ion \u202ex") == f"{FSI}Ion \u202ex{PDI}"
    assert isinstance(_isolate_bidi(markupsafe.Markup("\u202e<b>")), markupsafe.Markup)
