"""Text that looks like RFC 2047 encoded words, in an unstructured header (the Subject):
a mail reader decodes every encoded word it finds in one, so a caller name written as
`=?utf-8?b?...?=` would be shown as whatever it decodes to, line breaks included."""

from __future__ import annotations

import base64
import email
import email.policy

from hypothesis import given
from hypothesis import strategies as st

from notifyd.mail import mime

LOOK_ALIKE = "=?utf-8?b?" + base64.b64encode(b"x\r\nBcc: victim@attacker.example").decode() + "?="


def _look_alike(text: str, encoding: str) -> str:
    """`text` as a real encoded word would carry it, written by a caller as their name."""
    data = text.encode("utf-8")
    if encoding == "b":
        return f" =?utf-8?b?{base64.b64encode(data).decode()}?= "
    return " =?utf-8?q?" + "".join(f"={byte:02X}" for byte in data) + "?= "


def _decoded_subject(line: bytes) -> str:
    message = email.message_from_bytes(line + b"\r\nbody\r\n", policy=email.policy.default)
    return str(message["Subject"])


def test_an_encoded_word_look_alike_in_the_subject_is_shown_as_written() -> None:
    subject = f"Missed call from {LOOK_ALIKE} on +40 21 555 0100"
    line = mime.text_header("Subject", subject)
    assert _decoded_subject(line) == subject


def test_a_plain_ascii_subject_is_written_as_is() -> None:
    line = mime.text_header("Subject", "Missed call from Ion")
    assert line == b"Subject: Missed call from Ion\r\n"


@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "=?",
                    "?=",
                    "=?utf-8?q?",
                    "=?utf-8?b?",
                    "?q?",
                    "_",
                    "=41",
                    "QUJD",
                    " ",
                    "\u202e",
                    "é",
                ]
            ),
            st.text(st.characters(blacklist_categories=["Cc", "Cs"]), max_size=8),
            st.builds(_look_alike, st.text(max_size=10), st.sampled_from(["b", "q"])),
        ),
        max_size=12,
    ).map("".join)
)
def test_any_single_line_subject_reads_back_as_written(subject: str) -> None:
    decoded = _decoded_subject(mime.text_header("Subject", subject))
    # The email package folds runs of white space when it decodes; the words are kept.
    assert decoded.split() == subject.split()
