"""Voicemail audio and fax documents: decoded or fetched, checked by their bytes, made mailable.

The only module that imports `filetype` (the real type from the bytes), `img2pdf` (fax TIFF
to PDF) and Pillow (a TIFF's pages and their sizes, read before converting). A declared
content type or file name is never trusted: `prepare()` sniffs the bytes, refuses what a role
does not allow or a TIFF over its `PageLimits`, and corrects the rest. `fetch()` gets a file
the PBX offers by URL, from allowlisted hosts, ports and addresses only
(`notifyd.catalogue.fetch_allowlist`), size- and time-limited, with every failure marked transient
(retry later) or not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
import filetype
import img2pdf
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from PIL import Image
from yarl import URL

from notifyd.catalogue.fetch_allowlist import Allowlist

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
class PageLimits:
    """What a TIFF document may hold; `[attachments] max_pages` and `max_pixels`.

    The defaults are the settings' defaults: room for the longest faxes and the finest fax
    resolution (400 x 400 dpi on a US legal page is 19.4 million pixels), while the memory
    and time one file may cost stay bounded (a page of 12,000 x 12,000 pixels cost 277 MB, a
    file of 300 pages 4.6 s).
    """

    max_pages: int = 100
    max_pixels: int = 25_000_000  # a page


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


def prepare(
    role: str,
    filename: str,
    declared_type: str,
    content: bytes,
    limits: PageLimits = PageLimits(),
) -> Prepared:
    """Check `content` against what `role` allows and make it ready to attach to an email.

    The type comes from the bytes, never from `declared_type` (which is only a claim: one
    that disagrees with an allowed real type is corrected without complaint). A TIFF
    document within `limits` becomes a PDF. CPU-bound for a TIFF: call it in a thread from
    async code.
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
        _check_pages(content, limits)
        content = _tiff_to_pdf(content)
        real = "application/pdf"
    return Prepared(filename=_file_name(filename, role, real), content_type=real, content=content)


def _check_pages(content: bytes, limits: PageLimits) -> None:
    """Refuse a TIFF over `limits` from its directories alone: Pillow's open() and seek()
    read a page's tags, not its pixels, so a huge page costs nothing to measure."""
    try:
        with Image.open(io.BytesIO(content)) as image:
            for page in range(limits.max_pages + 1):
                try:
                    image.seek(page)
                except EOFError:
                    return
                if page == limits.max_pages:
                    raise AttachmentError(
                        f"document has more than {limits.max_pages} pages, the limit"
                        " ([attachments] max_pages)"
                    )
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise AttachmentError(
                        f"document page {page + 1} is {width} x {height} pixels, over the limit"
                        f" of {limits.max_pixels:,} pixels a page ([attachments] max_pixels)"
                    )
    # Pillow's own bomb check, above its threshold (which max_pixels stays under), fires in
    # open() before the size can be read: the page is over the limit either way.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AttachmentError(
            f"document has a page over the limit of {limits.max_pixels:,} pixels a page"
            " ([attachments] max_pixels)"
        ) from None
    except AttachmentError:
        raise
    # A malformed TIFF can fail anywhere in Pillow, each part with its own exceptions.
    except Exception:
        raise AttachmentError("document is a TIFF that could not be converted to PDF") from None


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


class _Refused(Exception):
    """A URL or address the allowlist refuses; the message says why."""


def _target(url: str, allowlist: Allowlist) -> URL:
    """`url` parsed as aiohttp (yarl) will send it, if its scheme, host and port are allowed.

    The host checked is the parsed one, so `http://pbx.example@evil.example/` is
    evil.example. A URL carrying a user name or password is refused outright: its host is
    easy to misread, and the credentials would be stored with the event. A name's
    addresses are checked once it is resolved (`_addresses`).
    """
    # A backslash is a path separator to some URL parsers and not to others.
    if "\\" in url or not url.isprintable():
        raise _Refused("the URL is not valid")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
        target = URL(url)
    except ValueError:
        raise _Refused("the URL is not valid") from None
    if target.scheme not in ("http", "https") or parts.scheme not in ("http", "https"):
        raise _Refused(f"the URL's scheme {target.scheme!r} is not allowed (http or https)")
    if "@" in parts.netloc or target.user is not None or target.password is not None:
        raise _Refused("a URL with a user name or password is not allowed")
    # The host and port checked are yarl's, the ones aiohttp connects to.
    host, port = target.raw_host, target.port
    if not host or port is None:
        raise _Refused("the URL is not valid")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        refusal = allowlist.name_refusal(host, port)
    else:
        refusal = allowlist.address_refusal(address, port, named=False)
    if refusal is not None:
        raise _Refused(refusal)
    return target


def host_allowed(url: str, allow_hosts: Sequence[str], sender_hosts: Sequence[str] = ()) -> bool:
    """Whether `url` is http(s) on a host (and port) of the allowlist, before any DNS.

    `allow_hosts` are `[attachments] fetch_allow_hosts` (names, IPs, CIDRs, each with an
    optional port); `sender_hosts` the webhook's sender and its source's networks. An empty
    allowlist allows nothing. See `notifyd.catalogue.fetch_allowlist` for the addresses
    never allowed.
    """
    try:
        _target(url, Allowlist.of(allow_hosts, sender_hosts))
    except _Refused:
        return False
    return True


async def _addresses(
    target: URL, allowlist: Allowlist, resolver: AbstractResolver
) -> list[ResolveResult]:
    """Where to connect for `target`: its address, or the allowed addresses its name has."""
    host, port = target.raw_host, target.port
    assert host is not None  # _target() made sure of both
    assert port is not None
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return [_result(host, host, port)]  # checked by _target(); aiohttp asks no resolver
    try:
        answers = await resolver.resolve(host, port, family=socket.AF_UNSPEC)
    except OSError as error:
        raise FetchError(
            f"could not resolve the URL's host: {type(error).__name__}", transient=True
        ) from None
    allowed: list[ResolveResult] = []
    refusals: list[str] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer["host"])
        except ValueError:
            continue
        refusal = allowlist.address_refusal(address, port, named=True)
        if refusal is None:
            allowed.append(_result(host, answer["host"], port))
        else:
            refusals.append(refusal)
    if not allowed:
        reason = refusals[0] if refusals else "it has no address"
        # Not transient: an address that is not allowed does not become allowed by waiting.
        raise FetchError(
            f"the URL's host {host} resolves to no allowed address: {reason}", transient=False
        )
    return allowed


def _result(name: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "hostname": name,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": 0,
    }


class _CheckedAddresses(AbstractResolver):
    """The connector's resolver: answers only with the addresses `_addresses` checked for the
    request in flight, so nothing can change between the check and the connection (a DNS
    answer that changes between two questions, "DNS rebinding", is never asked for)."""

    def __init__(self) -> None:
        self.host = ""
        self.answers: list[ResolveResult] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".") != self.host.rstrip(".") or not self.answers:
            raise OSError(f"{host} was not checked")
        return [_result(host, answer["host"], port) for answer in self.answers]

    async def close(self) -> None:
        pass


async def fetch(
    url: str,
    *,
    allow_hosts: Sequence[str],
    sender_hosts: Sequence[str] = (),
    max_bytes: int,
    timeout_seconds: float,
    resolver: AbstractResolver | None = None,
) -> bytes:
    """Fetch a file the PBX offers by URL; raise FetchError, transient or not.

    Nothing is sent to a host, port or address the allowlist refuses (`host_allowed`, and
    `notifyd.catalogue.fetch_allowlist` for addresses), including one a redirect points to
    (at most 3 are followed, each checked). A name is resolved once per request, by `resolver` (the
    system's by default), and the connection goes to an address that was checked. At most
    `max_bytes` are read; `timeout_seconds` bounds the whole fetch, DNS, redirects and body
    included. The bytes are not checked here: `prepare()` sniffs them, so a server that
    labels a WAV as text/html still delivers it.
    """
    allowlist = Allowlist.of(allow_hosts, sender_hosts)
    checked = _CheckedAddresses()
    names: AbstractResolver = DefaultResolver() if resolver is None else resolver
    try:
        async with (
            asyncio.timeout(timeout_seconds),
            # A session per fetch: its connector knows no address but the checked ones, and
            # keeps no connection or cookie for the next fetch, whose allowlist may differ.
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=checked, use_dns_cache=False),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
            ) as session,
        ):
            target = _target(url, allowlist)
            for _ in range(_MAX_REDIRECTS + 1):
                checked.host = target.raw_host or ""
                checked.answers = await _addresses(target, allowlist, names)
                async with session.get(target, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError(
                                f"the PBX answered {response.status} without a Location",
                                transient=False,
                            )
                        try:
                            target = _target(urljoin(str(target), location), allowlist)
                        except _Refused as refused:
                            raise _Refused(f"redirected: {refused}") from None
                        continue
                    if response.status != 200:
                        raise _status_error(response.status)
                    return await _read_body(response, max_bytes)
            raise FetchError(f"more than {_MAX_REDIRECTS} redirects", transient=False)
    except _Refused as refused:
        raise FetchError(str(refused), transient=False) from None
    except TimeoutError:
        raise FetchError(
            f"no complete answer within {timeout_seconds:g} seconds", transient=True
        ) from None
    except aiohttp.InvalidURL:
        raise FetchError("the URL is not valid", transient=False) from None
    except aiohttp.ClientError as error:
        # Connection refused or reset, a body cut short: the PBX may be back soon.
        raise FetchError(f"could not fetch: {type(error).__name__}", transient=True) from None
    finally:
        if resolver is None:
            await names.close()


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
