"""MIME composition without the `email` package's header machinery.

Building and flattening a message with `email.message.EmailMessage` and the SMTP policy
parses and refolds every header through the header registry: it measured ~2.5 ms of the
~6 ms each delivery cost, the largest share (PERF-BASELINES: "message building is the
delivery bottleneck"). The structure notifyd sends is always the same (text + HTML,
optionally attachments), so it is written directly: quoted-printable parts and base64
attachments by `binascii` (C), RFC 2047 base64 words for non-ASCII headers (written
here: `email.header` cost a tenth of each delivery), CRLF line ends. The result is
parsed back by the tests with the `email` package.

Header values come from validated data and our own formatting; any CR or LF left in one
is refused here, so no event data can add a header.
"""

from __future__ import annotations

import binascii
import email.utils
import functools
from collections.abc import Sequence
from urllib.parse import quote

from notifyd.unique_ids import new_id

CRLF = b"\r\n"


class HeaderInjection(ValueError):
    """A header value carried a line break."""


def header(name: str, value: str) -> bytes:
    """`Name: value`, RFC 2047-encoded and folded when the value is not plain ASCII."""
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"line break in the {name} header")
    if value.isascii() and len(name) + len(value) < 996:
        return f"{name}: {value}".encode("ascii") + CRLF
    return f"{name}: ".encode("ascii") + encoded_words(value, len(name) + 2) + CRLF


def text_header(name: str, value: str) -> bytes:
    """An unstructured header (the Subject), whose text comes from callers and senders.
    Plain ASCII holding "=?" is encoded whole too: a mail reader decodes every encoded word
    it finds in such a header, so a caller name written as `=?utf-8?b?...?=` would be shown
    as what it decodes to (a line break, a "Bcc:"); the text of an encoded word is never
    decoded again (RFC 2047 section 6.2), so the reader shows what the caller sent."""
    if "=?" in value and value.isascii():
        if "\r" in value or "\n" in value:
            raise HeaderInjection(f"line break in the {name} header")
        return f"{name}: ".encode("ascii") + encoded_words(value, len(name) + 2) + CRLF
    return header(name, value)


# "=?utf-8?b?" and "?=" around each word; lines kept to RFC 5322's 78 characters.
_WORD_FRAME = 12
_LINE = 78


def encoded_words(value: str, first_line_used: int) -> bytes:
    """RFC 2047 base64 words for `value`, folded onto continuation lines; a character is
    never split across two words (RFC 2047 section 5). Cut in the UTF-8 bytes, backing off
    from continuation bytes: a walk over the characters was a fifth of a message's
    rendering for a Romanian subject."""
    data = value.encode("utf-8")
    room = max(((_LINE - first_line_used - _WORD_FRAME) // 4) * 3, 3)
    words: list[bytes] = []
    start = 0
    while start < len(data):
        end = start + room
        if end < len(data):
            while end > start and data[end] & 0xC0 == 0x80:
                end -= 1
            if end == start:  # one character longer than the room: a word of its own
                end = start + 1
                while end < len(data) and data[end] & 0xC0 == 0x80:
                    end += 1
        words.append(_word(data[start:end]))
        start = end
        room = ((_LINE - 1 - _WORD_FRAME) // 4) * 3  # a continuation line starts with " "
    return b"\r\n ".join(words)


def _word(data: bytes) -> bytes:
    return b"=?utf-8?b?" + binascii.b2a_base64(data, newline=False) + b"?="


def mailbox_header(name: str, address: str) -> bytes:
    """`Name: address` for a bare address (`To`). Never an RFC 2047 word, which RFC 2047
    forbids in an address: a non-ASCII local part goes as UTF-8 (RFC 6532), in a message
    only a relay offering SMTPUTF8 is given (`transport`)."""
    if "\r" in address or "\n" in address:
        raise HeaderInjection(f"line break in the {name} header")
    return f"{name}: {address}".encode() + CRLF


@functools.lru_cache(maxsize=64)  # the sender and reply-to: the same on every message
def address_header(name: str, value: str) -> bytes:
    """An address header: the display name encoded if it is not ASCII, the address kept."""
    display, address = email.utils.parseaddr(value)
    if not display:
        return header(name, value)
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"line break in the {name} header")
    return (
        f"{name}: {email.utils.formataddr((display, address), charset='utf-8')}".encode("ascii")
        + CRLF
    )


def _qp(text: str) -> bytes:
    data = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    if "\r" not in text:
        # b2a_qp writes a CR only where the text has one: here its line ends are all bare
        # LFs, made CRLF in one pass instead of two (2-3 us of an HTML part's ~20).
        return data.replace(b"\n", CRLF)
    return data.replace(b"\r\n", b"\n").replace(b"\n", CRLF)


def _base64(data: bytes) -> bytes:
    # 57 bytes make one 76-character line (RFC 2045's limit).
    lines = b"".join(binascii.b2a_base64(data[i : i + 57]) for i in range(0, len(data), 57))
    return lines.replace(b"\n", CRLF)


def _file_parameter(parameter: str, name: str) -> str:
    """A file's name as a header parameter: quoted when plain, RFC 2231 otherwise."""
    if name.isascii() and name.isprintable() and not any(c in name for c in '"\\\r\n'):
        return f'{parameter}="{name}"'
    return f"{parameter}*=utf-8''" + quote(name, safe="")


def _text_part(subtype: str, text: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"'.encode()
        + CRLF
        + b"Content-Transfer-Encoding: quoted-printable"
        + CRLF
        + CRLF
        + _qp(text)
        + CRLF
    )


def compose(
    headers: Sequence[bytes],
    text: str,
    html: str,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A complete message: `headers` (from `header()`), a text/plain and text/html
    alternative, then (filename, content type, bytes) attachments."""
    # A boundary needs to be unique, not secret (unique_ids.py), and it can never occur in
    # a part: "==" is written "=3D=3D" in quoted-printable, and base64 has no "-".
    alternative = f"==notifyd-alt-{new_id()}"
    body = (
        f'Content-Type: multipart/alternative;\r\n boundary="{alternative}"'.encode()
        + CRLF
        + CRLF
        + f"--{alternative}".encode()
        + CRLF
        + _text_part("plain", text)
        + f"--{alternative}".encode()
        + CRLF
        + _text_part("html", html)
        + f"--{alternative}--".encode()
        + CRLF
    )
    if attachments:
        mixed = f"==notifyd-mix-{new_id()}"
        parts = [
            f'Content-Type: multipart/mixed;\r\n boundary="{mixed}"'.encode() + CRLF + CRLF,
            f"--{mixed}".encode() + CRLF + body,
        ]
        for filename, content_type, data in attachments:
            if "\r" in content_type or "\n" in content_type:
                raise HeaderInjection("line break in an attachment's content type")
            # The name on Content-Type too: older Outlook reads only that one, and shows a
            # file without it as "ATT00001.bin".
            named = _file_parameter("name", filename)
            disposition = _file_parameter("filename", filename)
            parts.append(
                f"--{mixed}".encode()
                + CRLF
                + f"Content-Type: {content_type}; {named}".encode()
                + CRLF
                + b"Content-Transfer-Encoding: base64"
                + CRLF
                + f"Content-Disposition: attachment; {disposition}".encode()
                + CRLF
                + CRLF
                + _base64(data)
            )
        parts.append(f"--{mixed}--".encode() + CRLF)
        body = b"".join(parts)
    return b"".join(headers) + b"MIME-Version: 1.0" + CRLF + body
