"""Pure time rules: quiet hours in the subscriber's zone and retry back-off.

No I/O and no clock: every function takes `now`, so the rules are tested with any
instant, across midnight and across daylight-saving changes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from notifyd.settings import DeliverySettings, QuietHours


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
    # Built from wall-clock fields and round-tripped through UTC, so an end that falls in a
    # spring-forward gap moves to the first real instant after it.
    end_local = datetime.combine(end_date, window.end, tzinfo=tz)
    return end_local.astimezone(UTC)


def release_time(now: datetime, window: QuietHours | None, zone: str) -> datetime:
    """The earliest instant at or after `now` outside quiet hours."""
    return quiet_hours_end(now, window, zone) or now


def retry_delay(
    attempt: int, settings: DeliverySettings, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, capped,
    with +-20 % jitter so a relay that comes back is not hit by every notice at once."""
    base = settings.retry_initial_seconds * (2 ** max(attempt - 1, 0))
    capped = min(base, settings.retry_max_seconds)
    jitter = (rng or random).uniform(0.8, 1.2)
    return float(min(capped * jitter, settings.retry_max_seconds))
