"""TIFF faxes within page and pixel limits, checked from the file's header before any page is
decoded: a file over a limit is refused with a reason naming the limit, one at it passes."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from notifyd.catalogue.attachments import AttachmentError, PageLimits, prepare
from notifyd.settings import AttachmentSettings, ConfigError, load
from tests.unit.attachment_support import tiff


def tiff_header_only(width: int, height: int) -> bytes:
    """A TIFF whose one page claims `width` x `height` (uncompressed, 8-bit grey) with no pixel
    data behind it. Pillow would need width x height bytes to draw such a page; this shows the
    size is read from the header and refused before anything is decoded."""
    tags = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # PhotometricInterpretation: black is zero
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, width * height),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def test_the_default_limits_suit_faxes_and_match_the_settings() -> None:
    limits = PageLimits()
    settings = AttachmentSettings()
    assert (limits.max_pages, limits.max_pixels) == (settings.max_pages, settings.max_pixels)
    # A 400 x 400 dpi fax of a US legal page (the largest fax page there is) passes.
    assert limits.max_pixels >= 3456 * 5600
    assert limits.max_pixels < 12_000 * 12_000


def test_a_page_over_the_pixel_limit_is_refused_naming_the_limit() -> None:
    limits = PageLimits(max_pages=5, max_pixels=800 * 1000)
    assert prepare("document", "fax.tif", "image/tiff", tiff([(800, 1000)]), limits).content
    with pytest.raises(AttachmentError) as refused:
        prepare("document", "fax.tif", "image/tiff", tiff([(800, 1000), (800, 1001)]), limits)
    assert str(refused.value) == (
        "document page 2 is 800 x 1001 pixels, over the limit of 800,000 pixels a page"
        " ([attachments] max_pixels)"
    )


def test_a_file_over_the_page_limit_is_refused_naming_the_limit() -> None:
    limits = PageLimits(max_pages=3, max_pixels=25_000_000)
    assert prepare("document", "fax.tif", "image/tiff", tiff([(64, 64)] * 3), limits).content
    with pytest.raises(AttachmentError) as refused:
        prepare("document", "fax.tif", "image/tiff", tiff([(64, 64)] * 4), limits)
    assert str(refused.value) == (
        "document has more than 3 pages, the limit ([attachments] max_pages)"
    )


@pytest.mark.parametrize("size", [(12_000, 12_000), (20_000, 20_000), (1, 2**31 - 1)])
def test_a_huge_page_is_refused_from_its_header_without_decoding(size: tuple[int, int]) -> None:
    started = time.monotonic()
    with pytest.raises(AttachmentError, match=r"\[attachments\] max_pixels"):
        prepare("document", "fax.tif", "image/tiff", tiff_header_only(*size))
    assert time.monotonic() - started < 1  # nothing of the 144 MB or more was drawn


def test_an_uncompressed_tiff_at_the_limit_is_converted() -> None:
    limits = PageLimits(max_pages=2, max_pixels=300 * 200)
    prepared = prepare("document", "f.tif", "image/tiff", tiff([(300, 200)] * 2, "raw"), limits)
    assert prepared.content_type == "application/pdf"


def write(folder: Path, text: str) -> Path:
    path = folder / "notifyd.toml"
    path.write_text(
        text + '\n[sources.pbx]\nsecrets = ["whsec_cGJ4LXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="]\n'
    )
    return path


def test_page_and_pixel_limits_are_read_and_checked(tmp_path: Path) -> None:
    settings = load(write(tmp_path, "[attachments]\nmax_pages = 30\nmax_pixels = 4000000\n"))
    assert (settings.attachments.max_pages, settings.attachments.max_pixels) == (30, 4_000_000)
    with pytest.raises(ConfigError) as error:
        load(write(tmp_path, "[attachments]\nmax_pages = 0\nmax_pixels = 200000000\n"))
    problems = dict(error.value.problems)
    assert problems["[attachments] max_pages"] == "must be between 1 and 10000, got 0"
    assert problems["[attachments] max_pixels"] == (
        "must be between 10000 and 80000000, got 200000000"
    )
