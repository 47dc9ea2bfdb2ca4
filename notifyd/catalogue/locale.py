"""The languages notices and pages are written in, and the time zones a subscriber may be in."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LANGUAGES = ("ro", "en")


def check_timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (use an IANA name such as 'Europe/Bucharest')"
    return None
