"""The sample events agree with themselves (issue 20): the voicemail's audio lasts as long
as its duration_seconds, the fax page has something on it, and the files and dates are of
the day the event happened, in the sample subscriber's zone."""

from __future__ import annotations

import base64
import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from PIL import Image

from notifyd.catalogue.attachments import prepare
from notifyd.catalogue.sample_files import wav_seconds
from notifyd.catalogue.samples import sample_data, sample_extra, sample_wav
from notifyd.mail.previews import sample_view

# 22:30 UTC is already the next day in Bucharest: a date taken in UTC would disagree.
LATE = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)


def file_of(data: dict[str, Any], field: str) -> tuple[str, bytes]:
    attached = data[field]
    return attached["filename"], base64.b64decode(attached["data_base64"])


@pytest.mark.parametrize("seconds", [14, 3])
def test_the_voicemail_audio_lasts_as_long_as_the_event_says(seconds: int) -> None:
    overrides = {} if seconds == 14 else {"duration_seconds": seconds}
    data = sample_data("voicemail.received", "acc-1", LATE, **overrides)
    name, audio = file_of(data, "audio")
    assert data["duration_seconds"] == seconds
    assert wav_seconds(audio) == seconds
    assert prepare("audio", name, "audio/wav", audio).content_type == "audio/wav"
    # The preview's attachment line tells the size of that same file.
    assert sample_extra("voicemail.received", data)["attachment"]["size_bytes"] == len(audio)


def test_the_sample_wav_is_a_tone_not_silence() -> None:
    frames = sample_wav(1.0, width=1)[44:]
    assert len(frames) == 8000
    assert len(set(frames[:4000])) > 1  # the beep
    assert set(frames[4000:]) == {0x80}  # then silence


def test_the_fax_page_is_not_blank() -> None:
    data = sample_data("fax.received", "acc-1", LATE)
    name, document = file_of(data, "document")
    with Image.open(io.BytesIO(document)) as page:
        assert page.format == "TIFF"
        assert page.mode == "1"
        pixels = page.width * page.height
        black = page.histogram()[0]
    # Text, rules and a table: a few per cent of the page inked, not a blank sheet.
    assert 0.01 < black / pixels < 0.5
    prepared = prepare("document", name, "image/tiff", document)
    assert prepared.content_type == "application/pdf"


def test_file_names_and_dates_are_of_the_events_day() -> None:
    fax = sample_data("fax.received", "acc-1", LATE)
    name, _ = file_of(fax, "document")
    assert name == "fax-20261123.tif"  # received at 00:29:30 in Bucharest
    usage = sample_data("usage.daily_limit_exceeded", "acc-1", LATE)
    assert usage["date"] == date(2026, 11, 23).isoformat()
    shown = sample_extra("fax.received", fax)["attachment"]
    assert shown["filename"] == "fax-20261123.pdf"  # as the email carries it
    preview = sample_view("fax.received", "ro", LATE).context["attachment"]
    assert preview["filename"] == "fax-20261123.pdf"
