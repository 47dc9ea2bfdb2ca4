"""Pure time rules: quiet hours in the subscriber's zone and retry back-off.

No I/O and no clock: every function takes `now`, so the rules are tested with any
instant, across midnight and across daylight-saving changes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from notifyd.model import QuietHours


def _in_window(moment: time, window: QuietHours) -> bool:
    if window.start < window.end:
        return window.start <= moment < window.end
    return moment >= window.start or moment < window.end  # the window spans midnight


def quiet_hours_end(now: datetime, window: QuietHours | None, zone: str) -> datetime | None:
    """When the quiet hours that contain `now` end (UTC), or None if `now` is not in them."""
    if window is None:
        return None
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    if not _in_window(wall, window):
        return None
    end_date = local.date()
    if wall >= window.end:
        end_date += timedelta(days=1)
    return _first_instant_at_or_after(datetime.combine(end_date, window.end), tz, now)


def _first_instant_at_or_after(wall: datetime, tz: ZoneInfo, now: datetime) -> datetime:
    """The UTC instant at which local clocks first read `wall`, and not before `now`.

    A wall time repeated when clocks go back has two instants: the first one not before
    `now` is taken. A wall time skipped when clocks go forward has none: the moment the
    clocks jump (the first real instant after it) is taken.
    """
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if earlier.astimezone(tz).replace(tzinfo=None) == wall:  # the wall time exists
        candidates = sorted({earlier, later})
        return next((c for c in candidates if c >= now), candidates[-1])
    # In a gap, fold=1 maps to an instant before the jump and fold=0 to one after it; the
    # jump lies between them, found to the second by bisection.
    low, high = sorted((earlier, later))
    offset_after = high.astimezone(tz).utcoffset()
    while (high - low) > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def release_time(now: datetime, window: QuietHours | None, zone: str) -> datetime:
    """The earliest instant at or after `now` outside quiet hours."""
    return quiet_hours_end(now, window, zone) or now


def digest_due(
    mode: str,
    now: datetime,
    zone: str,
    digest_time: time,
    quiet: QuietHours | None,
) -> datetime:
    """When the digest that takes a notice arriving at `now` goes out (UTC).

    Hourly: at the next full hour of the subscriber's clock. Daily: at the next
    `digest_time` of their clock (today's if it is still ahead). A digest falling in quiet
    hours goes when they end, so the notices of a night make one morning digest, not one
    per hour.
    """
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    if mode == "hourly":
        # Whole-hour steps from the start of this local hour stay on local hour boundaries
        # across DST changes (offsets change by whole hours, or half hours in a few zones
        # whose hours start at :30 UTC anyway).
        start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        due = start + timedelta(hours=1)
    elif mode == "daily":
        today = datetime.combine(local.date(), digest_time)
        due = _first_instant_at_or_after(today, tz, now)
        if due <= now:
            due = _first_instant_at_or_after(today + timedelta(days=1), tz, now)
    else:
        raise ValueError(f"not a digest mode: {mode!r}")
    return release_time(due, quiet, zone)


class BackOff(Protocol):
    """What a back-off reads: [delivery]'s for notices, [callbacks]' for callbacks."""

    @property
    def retry_initial_seconds(self) -> float: ...

    @property
    def retry_max_seconds(self) -> float: ...


def retry_delay(attempt: int, settings: BackOff, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, capped,
    with +-20 % jitter so a relay that comes back is not hit by every notice at once."""
    # The exponent is bounded first: 2**1024 overflows a float long before attempts run out.
    doublings = min(max(attempt - 1, 0), 64)
    capped = min(settings.retry_initial_seconds * 2.0**doublings, settings.retry_max_seconds)
    jitter = (rng or random).uniform(0.8, 1.2)
    return float(min(capped * jitter, settings.retry_max_seconds))
