"""Voicemail audio and fax documents: decoded, checked by their bytes, made mailable.

The only module that imports `filetype` (the real type from the bytes), `img2pdf` (fax TIFF
to PDF) and Pillow (a TIFF's pages and their sizes, read before converting). A declared
content type or file name is never trusted: `prepare()` sniffs the bytes, refuses what a role
does not allow or a TIFF over its `PageLimits`, and corrects the rest. A file the PBX offers
by URL is fetched by `delivery.fetching` when its email is built, then prepared here.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import unicodedata
from dataclasses import dataclass

import filetype
import img2pdf
from PIL import Image

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


class AttachmentError(Exception):
    """The attachment is unusable; the message is a short reason safe to show its sender."""


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


def size_text(size: int) -> str:
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
        raise AttachmentError(f"the file is larger than {size_text(max_bytes)}")
    try:
        content = base64.b64decode(data_base64, validate=True)
    except (binascii.Error, ValueError):
        raise AttachmentError("the file is not valid base64") from None
    if len(content) > max_bytes:
        raise AttachmentError(f"the file is larger than {size_text(max_bytes)}")
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
