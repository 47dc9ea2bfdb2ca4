"""The hand-written MIME composer: whatever it writes, the `email` package must read back
exactly (headers, both parts, attachments), and no value can add a header."""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import re
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyd.mail import mime


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def compose(**overrides: object) -> EmailMessage:
    subject = str(overrides.get("subject", "Apel nepreluat de la Ștefan Țăran"))
    headers = [
        mime.address_header("From", "Operator VoIP Ăî <notificari@voip.example>"),
        mime.header("To", "ana@client.example"),
        mime.header("Subject", subject),
        mime.header("Message-ID", "<abc@voip.example>"),
    ]
    text = str(overrides.get("text", "Bună ziua,\n\nAveți un apel nepreluat.\n" + "x" * 300))
    html = "<p>Bună ziua,</p>\n<p>" + "ț" * 200 + "</p>"
    attachments = overrides.get("attachments", ())
    return parse(mime.compose(headers, text, html, attachments))  # type: ignore[arg-type]


def test_headers_and_both_parts_read_back_exactly() -> None:
    message = compose()

    assert message["Subject"] == "Apel nepreluat de la Ștefan Țăran"
    assert message["From"].addresses[0].display_name == "Operator VoIP Ăî"
    assert message["From"].addresses[0].addr_spec == "notificari@voip.example"
    assert message["To"] == "ana@client.example"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    lines = text.get_content().splitlines()
    assert lines == ["Bună ziua,", "", "Aveți un apel nepreluat.", "x" * 300]
    assert "ț" * 200 in html.get_content()
    assert message.defects == []


def test_a_long_non_ascii_subject_is_folded_and_reads_back_whole() -> None:
    subject = "Rezumat zilnic: " + "apeluri nepreluate de la Ștefan, " * 10

    message = compose(subject=subject)

    assert message["Subject"].strip() == subject.strip()


@pytest.mark.parametrize(
    "filename", ["msg0001.wav", 'fax "urgent".pdf', "faxul-nr-1-ăîșț.pdf", "a\\b.pdf"]
)
def test_attachments_keep_their_bytes_and_names(filename: str) -> None:
    data = bytes(range(256)) * 900  # ~230 KB of every byte value

    message = compose(attachments=[(filename, "audio/wav", data)])

    assert message.get_content_type() == "multipart/mixed"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == filename
    assert attachment.get_content_type() == "audio/wav"
    assert attachment.get_content() == data


@pytest.mark.parametrize(
    ("filename", "written"),
    [
        ("msg0001.wav", b'name="msg0001.wav"'),
        ("faxul-nr-1-ăîșț.pdf", b"name*=utf-8''faxul-nr-1-%C4%83%C3%AE%C8%99%C8%9B.pdf"),
    ],
)
def test_an_attachment_is_named_on_its_content_type_too(filename: str, written: bytes) -> None:
    # Older Outlook reads the name from Content-Type only ("ATT00001.bin" without it).
    raw = mime.compose([], "text", "<p>html</p>", [(filename, "audio/wav", b"RIFF")])

    [content_type] = [
        line for line in raw.split(b"\r\n") if line.startswith(b"Content-Type: audio")
    ]
    assert content_type == b"Content-Type: audio/wav; " + written
    [attachment] = list(parse(raw).iter_attachments())
    assert attachment.get_param("name") == filename
    assert attachment.get_filename() == filename


def test_lines_stay_within_the_smtp_limit() -> None:
    data = mime.compose(
        [mime.header("Subject", "ș" * 400)], "y" * 5000, "<p>" + "z" * 5000 + "</p>"
    )

    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only


@pytest.mark.parametrize(
    "value", ["Maria\r\nBcc: victim@example.com", "Ion\nTo: x@example.com", "a\rb"]
)
def test_a_line_break_in_a_header_value_is_refused(value: str) -> None:
    with pytest.raises(mime.HeaderInjection):
        mime.header("Subject", value)
    with pytest.raises(mime.HeaderInjection):
        mime.address_header("Reply-To", f"{value} <a@example.com>")


@pytest.mark.parametrize(
    "value",
    [
        "Apel nerespins de la Ștefan Mureșan",
        "ș" * 400,
        "a" * 30 + "€" * 50 + "🙂" * 20,
        "x" * 70 + "ț",
    ],
)
def test_non_ascii_headers_are_words_of_whole_characters_within_78_columns(value: str) -> None:
    raw = mime.header("Subject", value)
    lines = raw.rstrip(b"\r\n").split(b"\r\n")
    assert all(len(line) <= 78 for line in lines), [len(line) for line in lines]
    assert all(line.startswith(b" ") for line in lines[1:])
    parsed = email.message_from_bytes(raw + b"\r\n", policy=email.policy.default)
    assert str(parsed["Subject"]) == value
    # Each word decodes on its own: no character is split across two.
    for word in re.findall(rb"=\?utf-8\?b\?([^?]*)\?=", raw):
        base64.b64decode(word).decode("utf-8")


def _words_a_character_at_a_time(value: str, first_line_used: int) -> bytes:
    """The composer's first way of cutting words, kept as the reference."""
    words: list[bytes] = []
    room = max(((78 - first_line_used - 12) // 4) * 3, 3)
    chunk: list[bytes] = []
    size = 0
    for char in value:
        data = char.encode("utf-8")
        if size + len(data) > room and chunk:
            words.append(b"=?utf-8?b?" + base64.b64encode(b"".join(chunk)) + b"?=")
            chunk, size = [], 0
            room = ((78 - 1 - 12) // 4) * 3
        chunk.append(data)
        size += len(data)
    if chunk:
        words.append(b"=?utf-8?b?" + base64.b64encode(b"".join(chunk)) + b"?=")
    return b"\r\n ".join(words)


@given(st.text(min_size=1, max_size=300), st.integers(min_value=2, max_value=80))
def test_words_are_cut_where_a_character_at_a_time_would_cut_them(
    value: str, first_line_used: int
) -> None:
    assert mime.encoded_words(value, first_line_used) == _words_a_character_at_a_time(
        value, first_line_used
    )


# Lines of what a template may write: its own markup and the values it is given, with the
# characters quoted-printable treats apart (=, a dot alone, trailing blanks, CR, controls,
# non-ASCII, lines past 76 columns).
_QP_TEXT = st.lists(
    st.sampled_from([*"ab.= \t\r\n\x00\x7fțș€", "x" * 40, '<p style="a">']), max_size=60
).map("".join)


@given(_QP_TEXT)
def test_quoted_printable_is_binasciis_with_crlf_line_ends(text: str) -> None:
    """_qp makes the LFs CRLF in one pass when the text has no CR; the same bytes as
    b2a_qp's output brought to CRLF the general way, with a CR or without."""
    general = binascii.b2a_qp(text.encode(), quotetabs=False, istext=True, header=False)

    assert mime._qp(text) == general.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_boundaries_are_this_process_prefix_and_a_counter_never_found_in_a_part() -> None:
    """From unique_ids (no getrandom system call a message): each message its own, and a
    part that holds the very boundary its message gets still reads back whole, since "=="
    cannot occur in quoted-printable."""
    boundary = re.compile(rb'boundary="==notifyd-alt-([0-9a-f]{32})"')
    ids: list[str] = []
    for _ in range(200):
        previous = ids[-1] if ids else "0" * 32
        following = f"{previous[:16]}{int(previous[16:], 16) + 1:016x}"
        text = f"--==notifyd-alt-{following}\n--==notifyd-alt-{following}--\n"
        data = mime.compose([mime.header("Subject", "s")], text, f"<p>{text}</p>")
        match = boundary.search(data)
        assert match is not None
        ids.append(match[1].decode())
        message = parse(data)
        plain = message.get_body(preferencelist=("plain",))
        assert plain is not None
        assert plain.get_content().replace("\r\n", "\n") == text
    assert len(set(ids)) == len(ids)
    assert len({one[:16] for one in ids}) == 1
    assert [int(one[16:], 16) for one in ids] == sorted(int(one[16:], 16) for one in ids)
