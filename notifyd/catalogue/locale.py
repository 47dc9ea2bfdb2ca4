"""The languages notices and pages are written in, and the time zones a subscriber may be in;
and how a billing system's way of naming them (a BCP 47 or POSIX locale, a zone in lower
case or as a UTC offset) is read as one of ours, and how a zone is named in an email.
Used by `fields`, `events` and `mail.rendering`."""

from __future__ import annotations

import functools
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

LANGUAGES = ("ro", "en")

# What separates a locale's language from its region, script or encoding: "en-GB" (BCP 47),
# "ro_RO.UTF-8" (POSIX), "en@euro".
_LOCALE_PARTS = re.compile(r"[-_.@]")
# An ISO 8601 offset, as a billing system writes a zone it knows only by its offset.
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})?$")
# Names in the tz database that are no place: the host's own zone, a build artefact, and
# "Factory", whose abbreviation is "-00". A subscriber cannot be in any of them.
_NOT_A_PLACE = frozenset({"localtime", "posixrules", "Factory"})


def check_timezone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (use an IANA name such as 'Europe/Bucharest')"
    return None


def language_of(tag: str) -> str | None:
    """The language we write in that a locale names ("en-GB", "ro_RO", "RO" …), or None
    when it names one we do not write in (then the operator's default applies)."""
    primary = _LOCALE_PARTS.split(tag.strip(), maxsplit=1)[0].lower()
    return primary if primary in LANGUAGES else None


def zone_of(value: str) -> str | None:
    """The IANA zone a sender's value names without doubt, or None (then the default
    applies). A name in any case ("europe/bucharest") is the zone of that name; an ISO
    offset of whole hours ("+02:00") is the fixed zone Etc/GMT-2. "GMT+2" is not taken:
    in POSIX it means two hours west, to people two hours east."""
    value = value.strip()
    if value in _NOT_A_PLACE:
        return None
    if check_timezone(value) is None:
        return value
    named = _zones_by_lower_case().get(value.lower())
    if named is not None:
        return named
    offset = _OFFSET.match(value)
    if offset is None or (offset[3] or "00") != "00":
        return None
    hours = int(offset[2])
    # The Etc zones' signs are POSIX's: Etc/GMT-2 is two hours east of UTC. They go from
    # 14 hours east to 12 west, as the world's offsets do.
    zone = "UTC" if hours == 0 else f"Etc/GMT{'-' if offset[1] == '+' else '+'}{hours}"
    return zone if check_timezone(zone) is None else None


@functools.cache
def _zones_by_lower_case() -> dict[str, str]:
    # Read once (about 35 ms), and only when a sender writes a zone in another case.
    return {name.lower(): name for name in available_timezones() if name not in _NOT_A_PLACE}


def zone_name(zone: str) -> str:
    """'America/New_York' -> 'America/New York': the IANA name as read, not as a path. A
    fixed zone is its offset: 'Etc/GMT-2' (what a sender's '+02:00' is kept as) has POSIX's
    sign, and would read as two hours west of GMT; it is 'UTC+02:00'."""
    fixed = _FIXED_ZONE.match(zone)
    if fixed is None:
        return zone.replace("_", " ")
    if not fixed[2] or int(fixed[2]) == 0:
        return "UTC"
    east = fixed[1] == "-"
    return f"UTC{'+' if east else '-'}{int(fixed[2]):02d}:00"


# The tz database's fixed zones: Etc/GMT-2 is UTC+02:00; Etc/GMT, Etc/UTC are UTC.
_FIXED_ZONE = re.compile(r"^Etc/(?:GMT|UTC|UCT|Zulu|Universal|Greenwich)(?:([+-]?)(\d{1,2}))?$")


def read_locale(data: Any) -> tuple[Any, tuple[str, ...]]:
    """An account event's data with its language and time zone mapped to ours, and the
    names of those given that cannot be, left out of it (then a default applies)."""
    if not isinstance(data, dict):
        return data, ()
    data = dict(data)
    dropped = []
    for key, read in (("language", language_of), ("timezone", zone_of)):
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # left out, as a blank optional field is (fields.SenderData)
        mapped = read(value) if isinstance(value, str) and len(value) <= 64 else None
        if mapped is None:
            del data[key]
            dropped.append(key)
        else:
            data[key] = mapped
    return data, tuple(dropped)
