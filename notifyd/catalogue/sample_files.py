"""The files of the sample events (samples.py): a voicemail's audio that lasts as long as
the event says, a fax page with something on it, a PDF; made here, not kept as blobs.

Neighbours: samples.py puts them in its events (`notifyd simulate`, `notifyd preview`,
tests); attachments.py checks and converts them as it does a PBX's files.
"""

from __future__ import annotations

import functools
import io
import wave
from datetime import date

from PIL import Image, ImageDraw, ImageFont

# A beep each second, half a second long: audible, and its length easy to hear.
_TONE_HZ = 500


@functools.lru_cache(maxsize=16)
def sample_wav(seconds: float = 0.25, rate: int = 8000, width: int = 2) -> bytes:
    """A mono WAV of exactly `seconds` (as many frames as `rate` gives), a 500 Hz beep in
    the first half of each second. `width` 2: 16-bit, the format Asterisk's voicemail
    writes; 1: 8-bit, half the size (a sample that has to travel inline)."""
    frames = round(seconds * rate)
    period = rate // _TONE_HZ
    if width == 1:  # unsigned, silence at 128
        high, low, silence = b"\xc0", b"\x40", b"\x80"
    else:  # signed little-endian
        high, low, silence = (
            (8000).to_bytes(2, "little", signed=True),
            (-8000).to_bytes(2, "little", signed=True),
            b"\x00\x00",
        )
    cycle = high * (period // 2) + low * (period - period // 2)
    half = rate // 2
    second = (cycle * (half // period + 1))[: half * width] + silence * (rate - half)
    samples = (second * (frames // rate + 1))[: frames * width]
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(width)
        audio.setframerate(rate)
        audio.writeframes(samples)
    return buffer.getvalue()


def wav_seconds(data: bytes) -> float:
    """How long a WAV lasts (the tests' measure of sample_wav)."""
    with wave.open(io.BytesIO(data), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


@functools.lru_cache(maxsize=4)
def sample_fax_tiff(day: date, sender_number: str) -> bytes:
    """One fax page as a fax machine sends it: 1-bit, 204 x 98 dpi, CCITT group 4, with a
    header line, a title, a few lines of text and a table drawn on it."""
    page = Image.new("1", (1728, 1140), 1)
    draw = ImageDraw.Draw(page)
    small, large = ImageFont.load_default(size=28), ImageFont.load_default(size=64)
    draw.text((40, 20), f"{day:%d.%m.%Y}   FROM {sender_number}   PAGE 1/1", font=small, fill=0)
    draw.line((40, 60, 1688, 60), fill=0, width=3)
    draw.text((80, 110), "Comanda / Order 2026-118", font=large, fill=0)
    lines = (
        "Buna ziua, va trimitem comanda pentru luna viitoare.",
        "Hello, please find our order for next month below.",
    )
    for row, text in enumerate(lines):
        draw.text((80, 230 + row * 44), text, font=small, fill=0)
    for row in range(5):  # a table of four items and its header
        top = 360 + row * 70
        draw.rectangle((80, top, 1648, top + 70), outline=0, width=2)
        draw.text((100, top + 20), f"Item {row}" if row else "Item / Qty", font=small, fill=0)
    draw.text((80, 760), "Ion Ionescu", font=large, fill=0)
    buffer = io.BytesIO()
    page.save(buffer, format="TIFF", compression="group4", dpi=(204, 98))
    return buffer.getvalue()


def sample_pdf() -> bytes:
    """A one-page PDF, small but well-formed (with a correct cross-reference table)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()
