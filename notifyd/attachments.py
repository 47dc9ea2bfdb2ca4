"""Voicemail audio and fax documents: decoded or fetched, checked by their bytes, made mailable.

The only module that imports `filetype` (the real type from the bytes) and `img2pdf` (fax
TIFF to PDF). A declared content type or file name is never trusted: `prepare()` sniffs the
bytes, refuses what a role does not allow, and corrects the rest. `fetch()` gets a file the
PBX offers by URL, from allowlisted hosts only, size- and time-limited, with every failure
marked transient (retry later) or not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
import filetype
import img2pdf
from yarl import URL

AUDIO = "audio"
DOCUMENT = "document"

ROLE_TYPES: dict[str, frozenset[str]] = {
    # Any WAV codec: Asterisk writes PCM, G.711 and GSM 6.10 (format tag 0x0031) WAVs.
    AUDIO: frozenset({"audio/wav", "audio/mpeg", "audio/ogg"}),
    # TIFF (what fax servers write) is converted to PDF by prepare().
    DOCUMENT: frozenset({"application/pdf", "image/tiff"}),
}

_EXPECTED = {AUDIO: "WAV, MP3 or OGG", DOCUMENT: "PDF or TIFF"}
_DEFAULT_STEM = {AUDIO: "voicemail", DOCUMENT: "fax"}
# The extension a prepared file gets, and the others that name the same type.
_EXTENSION = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "application/pdf": ".pdf",
}
_SAME_TYPE = {
    "audio/wav": frozenset({".wav", ".wave"}),
    "audio/mpeg": frozenset({".mp3"}),
    "audio/ogg": frozenset({".ogg", ".oga", ".opus"}),
    "application/pdf": frozenset({".pdf"}),
}
# filetype's names that differ from the ones we put in an email.
_NORMALISED = {"audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav"}
# What a file name may end in that names a type (and so is replaced, not kept): every type
# filetype knows plus the spellings it does not and the formats Asterisk writes.
_KNOWN_EXTENSIONS = frozenset(
    {"." + str(kind.extension).lower() for kind in filetype.types}
    | {".wave", ".oga", ".opus", ".tiff", ".jpeg", ".gsm", ".ulaw", ".alaw", ".sln", ".g722"}
    | {".g729", ".txt", ".htm", ".html", ".bin", ".dat"}
)
_MAX_NAME = 120
# Letters and digits of any script plus a little punctuation: no separators, no control or
# format characters (a right-to-left override can disguise "fdp.exe" as "exe.pdf").
_UNSAFE_NAME = re.compile(r"[^\w.()+ -]+")

_FETCH_CHUNK = 64 * 1024
_MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class AttachmentError(Exception):
    """The attachment is unusable; the message is a short reason safe to show its sender."""


class FetchError(Exception):
    """A file could not be fetched from the PBX; `transient` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Prepared:
    filename: str
    content_type: str
    content: bytes


def _size_text(size: int) -> str:
    """A byte count as a person reads it: 512 bytes, 64 KiB, 20 MiB."""
    if size < 1024:
        return f"{size} bytes"
    value, unit = size / 1024, "KiB"
    if value >= 1024:
        value, unit = value / 1024, "MiB"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def decode_inline(data_base64: str, max_bytes: int) -> bytes:
    """Decode an inline attachment; refuse one over `max_bytes` before decoding it."""
    # Every 4 characters hold at most 3 bytes: a longer text cannot fit, so it is refused
    # without allocating its decoded copy.
    if len(data_base64) > 4 * -(-max_bytes // 3):
        raise AttachmentError(f"the file is larger than {_size_text(max_bytes)}")
    try:
        content = base64.b64decode(data_base64, validate=True)
    except (binascii.Error, ValueError):
        raise AttachmentError("the file is not valid base64") from None
    if len(content) > max_bytes:
        raise AttachmentError(f"the file is larger than {_size_text(max_bytes)}")
    return content


def _mpeg_audio_frame(head: bytes) -> bool:
    # filetype knows MP3 frames only by FF FB, FF F3 and FF F2. It misses CRC-protected
    # MPEG-1 frames (FF FA) and MPEG-2.5 (FF E2/E3), which is what an 8 kHz voicemail
    # encoded without resampling is. This checks one layer III frame header, field by field.
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0b11
    return version != 0b01 and layer == 0b01 and bitrate not in (0, 15) and rate != 0b11


def _ogg_audio(content: bytes) -> bool:
    # filetype calls every Ogg stream audio/ogg, Theora video included. The codec is named at
    # the start of the first packet, after the 27-byte page header and its segment table.
    if len(content) < 28 or not content.startswith(b"OggS"):
        return False
    start = 27 + content[26]
    packet = content[start : start + 8]
    return packet == b"OpusHead" or packet[:7] == b"\x01vorbis"


def sniff(content: bytes) -> str | None:
    """The real MIME type of `content` from its bytes, or None if it is not recognised.

    Allowed types are normalised (audio/wav, audio/mpeg, audio/ogg, application/pdf,
    image/tiff); an Ogg stream that is neither Vorbis nor Opus is application/ogg.
    """
    kind = filetype.guess(content)
    if kind is None:
        return "audio/mpeg" if _mpeg_audio_frame(content[:4]) else None
    mime = str(kind.mime)
    mime = _NORMALISED.get(mime, mime)
    if mime == "audio/ogg" and not _ogg_audio(content):
        return "application/ogg"
    return mime


def _describe(mime: str) -> str:
    if mime == "application/ogg":
        return "an Ogg file without Vorbis or Opus audio"
    return mime


def prepare(role: str, filename: str, declared_type: str, content: bytes) -> Prepared:
    """Check `content` against what `role` allows and make it ready to attach to an email.

    The type comes from the bytes, never from `declared_type` (which is only a claim: one
    that disagrees with an allowed real type is corrected without complaint). A TIFF
    document becomes a PDF. CPU-bound for a TIFF: call it in a thread from async code.
    """
    if role not in ROLE_TYPES:
        raise ValueError(f"unknown attachment role {role!r}")
    if not content:
        raise AttachmentError(f"{role} is empty")
    real = sniff(content)
    if real is None:
        raise AttachmentError(f"{role} is not a recognised file type, expected {_EXPECTED[role]}")
    if real not in ROLE_TYPES[role]:
        raise AttachmentError(f"{role} is {_describe(real)}, expected {_EXPECTED[role]}")
    if real == "image/tiff":
        content = _tiff_to_pdf(content)
        real = "application/pdf"
    return Prepared(filename=_file_name(filename, role, real), content_type=real, content=content)


def _tiff_to_pdf(content: bytes) -> bytes:
    try:
        # A file object, not bytes: img2pdf would first try bytes as a file name to open.
        # Lossless: CCITT G4 pages are embedded as they are, other pages re-encoded exactly.
        pdf = img2pdf.convert(io.BytesIO(content))
    # A malformed TIFF can fail anywhere in Pillow or img2pdf, each with its own exceptions.
    except Exception:
        raise AttachmentError("document is a TIFF that could not be converted to PDF") from None
    if not isinstance(pdf, bytes) or not pdf.startswith(b"%PDF"):
        raise AttachmentError("document is a TIFF that could not be converted to PDF")
    return pdf


def _file_name(filename: str, role: str, mime: str) -> str:
    """A file name safe in a Content-Disposition and on the subscriber's disk.

    Only the last path component, safe characters, at most 120 characters, ending in the
    extension of the real type: replacing one that names another type, else appended.
    """
    name = unicodedata.normalize("NFC", filename)
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE_NAME.sub("_", name)
    name = re.sub(r"_{2,}", "_", name)
    name = re.sub(r" {2,}", " ", name).strip(" ")
    stem, dot, suffix = name.rpartition(".")
    suffix = f".{suffix.lower()}"
    extension = _EXTENSION[mime]
    if dot and suffix in _SAME_TYPE[mime]:
        extension = suffix
    elif not (dot and suffix in _KNOWN_EXTENSIONS):
        stem = name
    stem = stem.strip(" ._")[: _MAX_NAME - len(extension)].rstrip(" ._")
    return (stem or _DEFAULT_STEM[role]) + extension


def _allowed_entry(
    host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, entry: str
) -> bool:
    entry = entry.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    if not entry:
        return False
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return ip is None and host == entry
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version == network.version and ip in network


def host_allowed(url: str, allow_hosts: Sequence[str]) -> bool:
    """Whether `url` is http(s) on a host of `allow_hosts` (exact names, IPs or CIDRs).

    The host compared is the parsed one, so `http://pbx.example@evil.example/` is
    evil.example. A URL carrying a user name or password is refused outright: its host
    is easy to misread, and the credentials would be stored with the event. An empty
    allowlist allows nothing.
    """
    # A backslash is a path separator to some URL parsers and not to others.
    if not allow_hosts or "\\" in url or not url.isprintable():
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or "@" in parts.netloc:
        return False
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return False
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    return any(_allowed_entry(host, ip, entry) for entry in allow_hosts)


def _checked_target(url: str, allow_hosts: Sequence[str]) -> URL:
    # Checked as we parse it and as aiohttp (yarl) will, so that two parsers cannot
    # disagree about where the request goes.
    if not host_allowed(url, allow_hosts):
        raise FetchError("the URL's host is not allowed", transient=False)
    try:
        target = URL(url)
    except ValueError:
        raise FetchError("the URL is not valid", transient=False) from None
    if not host_allowed(str(target), allow_hosts):
        raise FetchError("the URL's host is not allowed", transient=False)
    return target


async def fetch(
    url: str,
    *,
    allow_hosts: Sequence[str],
    max_bytes: int,
    timeout_seconds: float,
    session: aiohttp.ClientSession,
) -> bytes:
    """Fetch a file the PBX offers by URL; raise FetchError, transient or not.

    Nothing is sent to a host that is not allowed, including one a redirect points to
    (at most 3 are followed). At most `max_bytes` are read; `timeout_seconds` bounds the
    whole fetch, redirects and body included. The bytes are not checked here: `prepare()`
    sniffs them, so a server that labels a WAV as text/html still delivers it.
    """
    target = _checked_target(url, allow_hosts)
    try:
        async with asyncio.timeout(timeout_seconds):
            for _ in range(_MAX_REDIRECTS + 1):
                async with session.get(target, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError(
                                f"the PBX answered {response.status} without a Location",
                                transient=False,
                            )
                        target = _checked_target(urljoin(str(target), location), allow_hosts)
                        continue
                    if response.status != 200:
                        raise _status_error(response.status)
                    return await _read_body(response, max_bytes)
            raise FetchError(f"more than {_MAX_REDIRECTS} redirects", transient=False)
    except TimeoutError:
        raise FetchError(
            f"no complete answer within {timeout_seconds:g} seconds", transient=True
        ) from None
    except aiohttp.ClientResponseError as error:
        # Only from a session made with raise_for_status: classified as we would.
        raise _status_error(error.status) from None
    except aiohttp.InvalidURL:
        raise FetchError("the URL is not valid", transient=False) from None
    except aiohttp.ClientError as error:
        # Connection refused or reset, DNS failure, a body cut short: the PBX may be back soon.
        raise FetchError(f"could not fetch: {type(error).__name__}", transient=True) from None


def _status_error(status: int) -> FetchError:
    # 408 and 429 ask to come back later; 5xx is the PBX's own trouble.
    transient = status >= 500 or status in (408, 429)
    return FetchError(f"the PBX answered {status}", transient=transient)


async def _read_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    too_large = FetchError(f"the file is larger than {_size_text(max_bytes)}", transient=False)
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(_FETCH_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            # Leaving the response unread closes the connection: nothing more is read.
            raise too_large
    return bytes(body)
