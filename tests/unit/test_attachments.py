"""Attachments by their bytes: real types per role, TIFF faxes to PDF, safe names, allowed hosts."""

from __future__ import annotations

import base64
import io
import ipaddress
import random
import struct
from collections.abc import Callable

import pikepdf
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from notifyd.catalogue.attachments import (
    ROLE_TYPES,
    AttachmentError,
    Prepared,
    decode_inline,
    prepare,
    sniff,
)
from notifyd.catalogue.samples import sample_pdf, sample_wav
from notifyd.delivery.fetching import host_allowed

# -- sample files built by hand, byte by byte as their formats say ------------------------------


def gsm_wav() -> bytes:
    """A GSM 6.10 WAV as Asterisk writes it (format tag 0x0031, 65-byte blocks of 320 samples)."""
    fmt = struct.pack("<HHIIHHHH", 0x0031, 1, 8000, 1625, 65, 0, 2, 320)
    fact = struct.pack("<I", 320)
    data = bytes(65)
    chunks = (
        b"fmt " + struct.pack("<I", len(fmt)) + fmt,
        b"fact" + struct.pack("<I", len(fact)) + fact,
        b"data" + struct.pack("<I", len(data)) + data,
    )
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mpeg_frame(header: bytes) -> bytes:
    """One MPEG audio frame: its 4-byte header and silence up to a plausible frame length."""
    return header + bytes(413)


MP3_FRAME = mpeg_frame(b"\xff\xfb\x90\x64")  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
MP3_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10) + MP3_FRAME  # ID3v2.4 tag, then a frame
MP3_8KHZ = mpeg_frame(b"\xff\xe3\x18\xc4")  # MPEG-2.5 layer III at 8 kHz: filetype misses it
MP3_CRC = mpeg_frame(b"\xff\xfa\x90\x64")  # MPEG-1 layer III with CRC: filetype misses it too


def ogg_page(packet: bytes) -> bytes:
    """A first (beginning-of-stream) Ogg page carrying one packet."""
    header = b"OggS" + struct.pack("<BBqIIIB", 0, 0x02, 0, 0x1234, 0, 0, 1)
    return header + bytes([len(packet)]) + packet


OGG_OPUS = ogg_page(b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0))
OGG_VORBIS = ogg_page(b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, 8000, 0, 16000, 0, 0xB8, 1))
OGG_THEORA = ogg_page(b"\x80theora" + bytes(34))


def fax_tiff(pages: int = 2, compression: str = "group4") -> tuple[bytes, list[Image.Image]]:
    """A multi-page bilevel TIFF at fax resolution (204 x 98 dpi), as fax servers write."""
    images = []
    for number in range(pages):
        page = Image.new("1", (1728, 1100), 1)
        draw = ImageDraw.Draw(page)
        draw.rectangle((100, 100, 900, 200 + 100 * number), fill=0)
        draw.line((0, 1099, 1727, 0), fill=0, width=3)
        images.append(page)
    out = io.BytesIO()
    images[0].save(
        out,
        format="TIFF",
        compression=compression,
        save_all=True,
        append_images=images[1:],
        dpi=(204, 98),
    )
    return out.getvalue(), images


def page_image(page: pikepdf.Page) -> pikepdf.PdfImage:
    """The one image a page of a converted fax holds."""
    (image,) = page.get_images().values()
    assert isinstance(image, pikepdf.Stream)
    return pikepdf.PdfImage(image)


def pdf_pages(pdf: bytes) -> list[Image.Image]:
    with pikepdf.open(io.BytesIO(pdf)) as document:
        return [page_image(page).as_pil_image().convert("1") for page in document.pages]


# -- sniff -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "mime"),
    [
        (sample_wav(), "audio/wav"),
        (gsm_wav(), "audio/wav"),
        (MP3_FRAME, "audio/mpeg"),
        (MP3_ID3, "audio/mpeg"),
        (MP3_8KHZ, "audio/mpeg"),
        (MP3_CRC, "audio/mpeg"),
        (OGG_OPUS, "audio/ogg"),
        (OGG_VORBIS, "audio/ogg"),
        (OGG_THEORA, "application/ogg"),
        (sample_pdf(), "application/pdf"),
        (fax_tiff()[0], "image/tiff"),
        (b"", None),
        (b"hello, this is plain text", None),
    ],
    ids=[
        "wav",
        "gsm-wav",
        "mp3-frame",
        "mp3-id3",
        "mp3-8khz",
        "mp3-crc",
        "ogg-opus",
        "ogg-vorbis",
        "ogg-theora",
        "pdf",
        "tiff",
        "empty",
        "text",
    ],
)
def test_sniff_names_the_real_type_from_the_bytes(content: bytes, mime: str | None) -> None:
    assert sniff(content) == mime


def test_sniff_does_not_take_a_reserved_mpeg_header_for_mp3() -> None:
    assert sniff(mpeg_frame(b"\xff\xeb\x90\x64")) is None  # version bits 01: reserved
    assert sniff(mpeg_frame(b"\xff\xe3\xf0\xc4")) is None  # bitrate index 15: invalid


# -- prepare: audio ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "declared", "filename", "expected"),
    [
        (sample_wav(), "audio/wav", "msg0001.wav", ("msg0001.wav", "audio/wav")),
        (gsm_wav(), "audio/x-wav", "msg0001", ("msg0001.wav", "audio/wav")),
        (MP3_ID3, "audio/mpeg", "msg0002.mp3", ("msg0002.mp3", "audio/mpeg")),
        (MP3_8KHZ, "audio/mp3", "msg0003", ("msg0003.mp3", "audio/mpeg")),
        (OGG_OPUS, "audio/opus", "msg0004.opus", ("msg0004.opus", "audio/ogg")),
        (OGG_VORBIS, "audio/ogg", "msg0005.OGG", ("msg0005.ogg", "audio/ogg")),
    ],
    ids=["wav", "gsm-wav", "mp3", "mp3-8khz", "opus", "vorbis"],
)
def test_voicemail_audio_is_accepted_with_its_real_type(
    content: bytes, declared: str, filename: str, expected: tuple[str, str]
) -> None:
    prepared = prepare("audio", filename, declared, content)
    assert (prepared.filename, prepared.content_type) == expected
    assert prepared.content == content


def test_a_wrongly_declared_type_is_corrected_silently() -> None:
    prepared = prepare("audio", "voicemail.mp3", "audio/mpeg", sample_wav())
    assert prepared == Prepared("voicemail.wav", "audio/wav", sample_wav())


def test_a_pdf_given_as_voicemail_audio_is_refused() -> None:
    with pytest.raises(AttachmentError) as refused:
        prepare("audio", "msg0001.wav", "audio/wav", sample_pdf())
    assert str(refused.value) == "audio is application/pdf, expected WAV, MP3 or OGG"


def test_an_ogg_video_is_not_voicemail_audio() -> None:
    with pytest.raises(AttachmentError, match="audio is an Ogg file without Vorbis or Opus"):
        prepare("audio", "msg0001.ogg", "audio/ogg", OGG_THEORA)


@pytest.mark.parametrize("role", sorted(ROLE_TYPES))
def test_random_bytes_are_refused(role: str) -> None:
    noise = random.Random(20261122).randbytes(4096)
    with pytest.raises(AttachmentError, match=f"^{role} is not a recognised file type"):
        prepare(role, "file.bin", "application/octet-stream", noise)


@pytest.mark.parametrize("role", sorted(ROLE_TYPES))
def test_an_empty_file_is_refused(role: str) -> None:
    with pytest.raises(AttachmentError, match=f"^{role} is empty$"):
        prepare(role, "file", "audio/wav", b"")


def test_an_unknown_role_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown attachment role"):
        prepare("video", "clip.ogg", "audio/ogg", OGG_OPUS)


# -- prepare: fax documents --------------------------------------------------------------------


def test_a_pdf_fax_is_kept_as_it_is() -> None:
    prepared = prepare("document", "fax-20261122", "application/octet-stream", sample_pdf())
    assert prepared == Prepared("fax-20261122.pdf", "application/pdf", sample_pdf())


@pytest.mark.parametrize("compression", ["group4", "group3"])
def test_a_multi_page_tiff_fax_becomes_one_pdf_losslessly(compression: str) -> None:
    tiff, pages = fax_tiff(pages=2, compression=compression)
    prepared = prepare("document", "fax-20261122.tif", "image/tiff", tiff)
    assert prepared.filename == "fax-20261122.pdf"
    assert prepared.content_type == "application/pdf"
    assert prepared.content.startswith(b"%PDF")
    page_objects = prepared.content.count(b"/Type /Page") - prepared.content.count(b"/Type /Pages")
    assert page_objects == 2
    converted = pdf_pages(prepared.content)
    assert len(converted) == 2
    for original, page in zip(pages, converted, strict=True):
        assert page.size == original.size
        assert page.tobytes() == original.tobytes()


def test_a_group4_tiff_is_embedded_without_recompression() -> None:
    tiff, _ = fax_tiff(pages=1)
    prepared = prepare("document", "fax.tiff", "image/tiff", tiff)
    with pikepdf.open(io.BytesIO(prepared.content)) as document:
        assert page_image(document.pages[0]).filters == ["/CCITTFaxDecode"]
        # 204 x 98 dpi: the page keeps the fax's proportions (1728 px wide is 8.47 in).
        box = [float(v) for v in document.pages[0].mediabox]
        assert box[2] == pytest.approx(1728 / 204 * 72, rel=0.01)
        assert box[3] == pytest.approx(1100 / 98 * 72, rel=0.01)


def test_a_broken_tiff_is_refused() -> None:
    tiff, _ = fax_tiff(pages=1)
    with pytest.raises(AttachmentError, match="TIFF that could not be converted"):
        prepare("document", "fax.tif", "image/tiff", tiff[:40])


def test_a_wav_given_as_a_fax_document_is_refused() -> None:
    with pytest.raises(AttachmentError) as refused:
        prepare("document", "fax.pdf", "application/pdf", sample_wav())
    assert str(refused.value) == "document is audio/wav, expected PDF or TIFF"


def test_a_png_is_not_a_fax_document() -> None:
    out = io.BytesIO()
    Image.new("1", (8, 8)).save(out, format="PNG")
    with pytest.raises(AttachmentError, match=r"^document is image/png, expected PDF or TIFF$"):
        prepare("document", "fax.png", "image/png", out.getvalue())


# -- file names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("msg0001", "msg0001.wav"),
        ("msg0001.wav", "msg0001.wav"),
        ("MSG0001.WAV", "MSG0001.wav"),
        ("msg0001.wave", "msg0001.wave"),
        ("msg0001.mp3", "msg0001.wav"),
        ("msg0001.gsm", "msg0001.wav"),
        ("msg.0001", "msg.0001.wav"),
        ("call 2026-11-22.final", "call 2026-11-22.final.wav"),
        ("../../etc/passwd", "passwd.wav"),
        ("C:\\Users\\pbx\\msg0001.wav", "msg0001.wav"),
        ("bad\r\nname\x00.wav", "bad_name.wav"),
        ("invoice\u202efdp.exe", "invoice_fdp.wav"),
        ("a<b>c|d?*:\"e'.wav", "a_b_c_d_e.wav"),
        ("Mesaj   vocal de la Ana\u0306.wav", "Mesaj vocal de la Ană.wav"),
        (".wav", "voicemail.wav"),
        ("...", "voicemail.wav"),
        ("", "voicemail.wav"),
        ("/", "voicemail.wav"),
        (".hidden", "hidden.wav"),
    ],
)
def test_the_file_name_is_made_safe_and_ends_in_the_real_extension(
    given: str, expected: str
) -> None:
    assert prepare("audio", given, "audio/wav", sample_wav()).filename == expected


def test_a_long_file_name_is_cut_to_120_characters_keeping_its_extension() -> None:
    name = prepare("audio", "x" * 300 + ".wav", "audio/wav", sample_wav()).filename
    assert len(name) == 120
    assert name == "x" * 116 + ".wav"


def test_a_fax_without_a_name_gets_one() -> None:
    assert prepare("document", "", "application/pdf", sample_pdf()).filename == "fax.pdf"


# -- decode_inline -------------------------------------------------------------------------------


def test_inline_base64_is_decoded() -> None:
    wav = sample_wav()
    assert decode_inline(base64.b64encode(wav).decode(), max_bytes=len(wav)) == wav


def test_inline_file_over_the_limit_is_refused() -> None:
    encoded = base64.b64encode(bytes(1025)).decode()
    with pytest.raises(AttachmentError, match=r"^the file is larger than 1 KiB$"):
        decode_inline(encoded, max_bytes=1024)


def test_inline_file_exactly_at_the_limit_is_accepted() -> None:
    assert decode_inline("AAAA", max_bytes=3) == bytes(3)
    assert decode_inline("AAA=", max_bytes=2) == bytes(2)
    with pytest.raises(AttachmentError, match="larger than 2 bytes"):
        decode_inline("AAAA", max_bytes=2)


def test_a_huge_inline_body_is_refused_by_its_length_before_decoding() -> None:
    # Not even valid base64: only the length was looked at.
    with pytest.raises(AttachmentError, match="larger than 20 MiB"):
        decode_inline("!" * (30 * 1024 * 1024), max_bytes=20 * 1024 * 1024)


@pytest.mark.parametrize("text", ["not base64!", "AAA", "AA=A", "QUJD\nREVG"])
def test_invalid_inline_base64_is_refused(text: str) -> None:
    with pytest.raises(AttachmentError, match=r"^the file is not valid base64$"):
        decode_inline(text, max_bytes=1024)


# -- host_allowed --------------------------------------------------------------------------------

PBX_HOSTS = ("pbx.example", "10.1.0.0/16", "192.0.2.7", "2001:db8:5::/48", "[2001:db8::9]")


@pytest.mark.parametrize(
    "url",
    [
        "https://pbx.example/recordings/msg0001.wav",
        "http://pbx.example:8088/recordings/msg0001.wav?token=abc",
        "HTTPS://PBX.Example./recordings/msg0001.wav",
        "http://10.1.200.3/fax/1.tif",
        "http://192.0.2.7:8080/fax/1.tif",
        "http://[2001:db8:5::1]:8443/x",
        "http://[2001:db8::9]/x",
        "http://[::ffff:10.1.2.3]/x",
    ],
)
def test_allowed_hosts(url: str) -> None:
    assert host_allowed(url, PBX_HOSTS)


@pytest.mark.parametrize(
    "url",
    [
        "http://pbx.example@evil.example/x",
        "http://pbx.example:80@evil.example/x",
        "http://user:secret@pbx.example/x",
        "http://evil.example/pbx.example",
        "http://evil.example/?host=pbx.example",
        "http://pbx.example.evil.example/x",
        "http://evilpbx.example/x",
        "http://pbx.example\\@evil.example/x",
        "http://10.2.0.1/x",
        "http://192.0.2.8/x",
        "http://[2001:db8:6::1]/x",
        "http://[2001:db8::a]/x",
        "http://[::1]/x",
        "http://pbx.example:port/x",
        "http://pbx.example\t/x",
        "ftp://pbx.example/x",
        "file:///etc/passwd",
        "gopher://pbx.example/x",
        "ws://pbx.example/x",
        "//pbx.example/x",
        "pbx.example/x",
        "http:///x",
        "",
    ],
)
def test_refused_hosts(url: str) -> None:
    assert not host_allowed(url, PBX_HOSTS)


def test_an_empty_allowlist_allows_nothing() -> None:
    assert not host_allowed("https://pbx.example/x", [])
    assert not host_allowed("https://pbx.example/x", [""])


def test_names_and_addresses_do_not_match_each_other() -> None:
    # No DNS: a name entry never allows an address, an address entry never allows a name.
    assert not host_allowed("http://127.0.0.1/x", ["localhost"])
    assert not host_allowed("http://localhost/x", ["127.0.0.1"])
    assert host_allowed("http://localhost/x", ["LOCALHOST"])


# Every spelling of an IPv4 address a URL parser or getaddrinfo() may accept.
SPELLINGS: dict[str, Callable[[ipaddress.IPv4Address], str]] = {
    "dotted": str,
    "mapped": lambda a: f"[::ffff:{a}]",
    "mapped hex": lambda a: f"[::ffff:{int(a) >> 16:x}:{int(a) & 0xFFFF:x}]",
    "compatible": lambda a: f"[::{a}]",
    "decimal": lambda a: str(int(a)),
    "hex": lambda a: hex(int(a)),
    "octal": lambda a: ".".join(f"0{int(part):o}" for part in str(a).split(".")),
    "short": lambda a: f"{a.packed[0]}.{int.from_bytes(a.packed[1:])}",
    "trailing dot": lambda a: f"{a}.",
}
# What a careless configuration could hold: the sender behind a reverse proxy on this host,
# and networks wide enough to hold every address.
CARELESS_SENDERS = ("127.0.0.1", "::1", "0.0.0.0/0", "::/0")


@given(
    address=st.sampled_from(
        ["127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]
    ).flatmap(
        lambda network: st.integers(
            int(ipaddress.IPv4Network(network).network_address),
            int(ipaddress.IPv4Network(network).broadcast_address),
        )
    ),
    spelling=st.sampled_from(sorted(SPELLINGS)),
    port=st.integers(1, 65535),
)
def test_an_address_of_this_host_is_refused_in_every_spelling(
    address: int, spelling: str, port: int
) -> None:
    host = SPELLINGS[spelling](ipaddress.IPv4Address(address))
    url = f"http://{host}:{port}/recordings/msg0001.wav"
    assert not host_allowed(url, ("pbx.internal.example", "0.0.0.0/0", "::/0"), CARELESS_SENDERS)
