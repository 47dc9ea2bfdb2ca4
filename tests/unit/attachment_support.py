"""Fax documents made for the tests: bilevel multi-page TIFFs of the sizes asked."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def tiff(sizes: list[tuple[int, int]], compression: str = "group4") -> bytes:
    """A bilevel multi-page TIFF, one page of each (width, height)."""
    pages = []
    for width, height in sizes:
        page = Image.new("1", (width, height), 1)
        ImageDraw.Draw(page).line((0, 0, width - 1, height - 1), fill=0)
        pages.append(page)
    out = io.BytesIO()
    pages[0].save(
        out, format="TIFF", save_all=True, append_images=pages[1:], compression=compression
    )
    return out.getvalue()
