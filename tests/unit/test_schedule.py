"""Quiet hours in the subscriber's zone (across midnight and DST) and retry back-off."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from notifyd.model import QuietHours
from notifyd.rules.schedule import quiet_hours_end, release_time, retry_delay
from notifyd.settings import DeliverySettings

BUCHAREST = "Europe/Bucharest"
NIGHT = QuietHours(time(22, 0), time(8, 0))
LUNCH = QuietHours(time(13, 0), time(14, 0))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def local(moment: datetime, zone: str = BUCHAREST) -> datetime:
    return moment.astimezone(ZoneInfo(zone))


# -- quiet_hours_end ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "end"),
    [
        # 23:30 EET in the evening: ends 08:00 EET the next morning.
        ("2026-11-22T21:30:00+00:00", "2026-11-23T06:00:00+00:00"),
        # 22:00 EET sharp is inside.
        ("2026-11-22T20:00:00+00:00", "2026-11-23T06:00:00+00:00"),
        # 00:30 EET after midnight: ends 08:00 the same day.
        ("2026-11-22T22:30:00+00:00", "2026-11-23T06:00:00+00:00"),
        # 05:00 EET in the early morning.
        ("2026-11-23T03:00:00+00:00", "2026-11-23T06:00:00+00:00"),
        # 07:59 EET, one minute before the end.
        ("2026-11-23T05:59:00+00:00", "2026-11-23T06:00:00+00:00"),
    ],
)
def test_quiet_hours_across_midnight_end_at_8_local(now: str, end: str) -> None:
    assert quiet_hours_end(utc(now), NIGHT, BUCHAREST) == utc(end)


@pytest.mark.parametrize(
    "now",
    [
        "2026-11-23T06:00:00+00:00",  # 08:00 EET: the end itself is outside
        "2026-11-23T10:00:00+00:00",  # 12:00 EET
        "2026-11-22T19:59:59+00:00",  # 21:59:59 EET
    ],
)
def test_quiet_hours_end_is_none_outside_the_window(now: str) -> None:
    assert quiet_hours_end(utc(now), NIGHT, BUCHAREST) is None


def test_same_day_window_ends_the_same_day() -> None:
    now = utc("2026-11-22T11:30:00+00:00")  # 13:30 EET

    assert quiet_hours_end(now, LUNCH, BUCHAREST) == utc("2026-11-22T12:00:00+00:00")


@pytest.mark.parametrize(
    "now",
    [
        "2026-11-22T10:59:59+00:00",  # 12:59:59 EET
        "2026-11-22T12:00:00+00:00",  # 14:00 EET
        "2026-11-22T21:00:00+00:00",  # 23:00 EET: a same-day window does not wrap
    ],
)
def test_same_day_window_is_none_outside(now: str) -> None:
    assert quiet_hours_end(utc(now), LUNCH, BUCHAREST) is None


def test_no_quiet_hours_means_never_held() -> None:
    assert quiet_hours_end(utc("2026-11-22T23:00:00+00:00"), None, BUCHAREST) is None


def test_quiet_hours_are_read_in_the_given_zone() -> None:
    now = utc("2026-11-22T12:00:00+00:00")  # 14:00 in Bucharest, 07:00 in New York

    assert quiet_hours_end(now, NIGHT, BUCHAREST) is None
    assert quiet_hours_end(now, NIGHT, "America/New_York") == utc("2026-11-22T13:00:00+00:00")


def test_quiet_hours_end_is_returned_in_utc() -> None:
    end = quiet_hours_end(utc("2026-11-22T21:30:00+00:00"), NIGHT, BUCHAREST)

    assert end is not None
    assert end.utcoffset() == timedelta(0)


# -- daylight-saving changes in Bucharest (2026-03-29 03:00 EET -> 04:00 EEST,
#    2026-10-25 04:00 EEST -> 03:00 EET) ------------------------------------------------------


@pytest.mark.parametrize(
    "now",
    [
        "2026-03-28T20:30:00+00:00",  # 22:30 EET the evening before
        "2026-03-29T00:30:00+00:00",  # 02:30 EET, just before the clocks jump
        "2026-03-29T01:30:00+00:00",  # 04:30 EEST, just after
        "2026-03-29T04:59:00+00:00",  # 07:59 EEST
    ],
)
def test_spring_forward_night_ends_at_8_summer_time(now: str) -> None:
    end = quiet_hours_end(utc(now), NIGHT, BUCHAREST)

    assert end == utc("2026-03-29T05:00:00+00:00")
    assert local(end).replace(tzinfo=None) == datetime(2026, 3, 29, 8, 0)
    assert local(end).utcoffset() == timedelta(hours=3)


@pytest.mark.parametrize(
    "now",
    [
        "2026-10-24T20:00:00+00:00",  # 23:00 EEST the evening before
        "2026-10-25T00:30:00+00:00",  # 03:30 EEST, first pass of the repeated hour
        "2026-10-25T01:30:00+00:00",  # 03:30 EET, second pass
        "2026-10-25T05:59:00+00:00",  # 07:59 EET
    ],
)
def test_fall_back_night_ends_at_8_winter_time(now: str) -> None:
    end = quiet_hours_end(utc(now), NIGHT, BUCHAREST)

    assert end == utc("2026-10-25T06:00:00+00:00")
    assert local(end).replace(tzinfo=None) == datetime(2026, 10, 25, 8, 0)
    assert local(end).utcoffset() == timedelta(hours=2)


def test_end_inside_the_spring_forward_gap_moves_to_the_first_real_instant() -> None:
    window = QuietHours(time(22, 0), time(3, 30))
    now = utc("2026-03-28T23:00:00+00:00")  # 01:00 EET, inside

    assert quiet_hours_end(now, window, BUCHAREST) == utc("2026-03-29T01:00:00+00:00")


def test_release_in_the_repeated_hour_is_never_before_now() -> None:
    window = QuietHours(time(22, 0), time(3, 45))
    now = utc("2026-10-25T01:30:00+00:00")  # 03:30 EET, second pass

    assert release_time(now, window, BUCHAREST) == utc("2026-10-25T01:45:00+00:00")


# -- release_time ------------------------------------------------------------------------------


def test_release_time_outside_quiet_hours_is_now() -> None:
    now = utc("2026-11-22T10:00:00+00:00")

    assert release_time(now, NIGHT, BUCHAREST) == now


def test_release_time_inside_quiet_hours_is_their_end() -> None:
    now = utc("2026-11-22T21:30:00+00:00")

    assert release_time(now, NIGHT, BUCHAREST) == utc("2026-11-23T06:00:00+00:00")


def test_release_time_without_quiet_hours_is_now() -> None:
    now = utc("2026-11-22T21:30:00+00:00")

    assert release_time(now, None, BUCHAREST) == now


ZONES = ["Europe/Bucharest", "UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
minute_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))
instants = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.just(UTC),
)


def in_window(wall: time, window: QuietHours) -> bool:
    if window.start < window.end:
        return window.start <= wall < window.end
    return wall >= window.start or wall < window.end


def is_unambiguous(day: date, wall: time, zone: ZoneInfo) -> bool:
    """False when the wall time is skipped (spring forward) or repeated (fall back)."""
    first = datetime.combine(day, wall, tzinfo=zone)
    return first.utcoffset() == first.replace(fold=1).utcoffset()


@settings(deadline=None)
@given(now=instants, start=minute_times, end=minute_times, zone=st.sampled_from(ZONES))
def test_release_time_is_never_inside_quiet_hours_nor_before_now(
    now: datetime, start: time, end: time, zone: str
) -> None:
    assume(start != end)
    window = QuietHours(start, end)
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    # Ends that fall in a DST gap or overlap have their own property below.
    assume(is_unambiguous(today, end, tz) and is_unambiguous(today + timedelta(days=1), end, tz))

    released = release_time(now, window, zone)

    assert released >= now
    assert not in_window(released.astimezone(tz).time(), window)
    if in_window(now.astimezone(tz).time(), window):
        assert released.astimezone(tz).time() == end
        assert released - now <= timedelta(hours=25)
    else:
        assert released == now


# Clock changes in Bucharest (one hour, at 03:00/04:00) and Lord Howe (half an hour, at 02:00).
CLOCK_CHANGES = [
    ("Europe/Bucharest", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("Europe/Bucharest", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, 0, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
]


@settings(deadline=None, max_examples=300)
@given(
    change=st.sampled_from(CLOCK_CHANGES),
    offset_minutes=st.integers(-26 * 60, 26 * 60),
    start=minute_times,
    end=st.builds(time, st.integers(1, 4), st.integers(0, 59)),
)
def test_release_time_around_clock_changes_is_never_before_now(
    change: tuple[str, datetime], offset_minutes: int, start: time, end: time
) -> None:
    zone, moment = change
    now = moment + timedelta(minutes=offset_minutes)
    assume(start != end)
    window = QuietHours(start, end)
    tz = ZoneInfo(zone)

    released = release_time(now, window, zone)

    assert released >= now
    assert released - now <= timedelta(hours=25)
    wall = released.astimezone(tz)
    if in_window(now.astimezone(tz).time(), window) and is_unambiguous(wall.date(), end, tz):
        assert wall.time() == end


# -- retry_delay -------------------------------------------------------------------------------


class MidpointRandom(random.Random):
    """uniform() returns the middle of the range: no jitter."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


DELIVERY = DeliverySettings(retry_initial_seconds=60.0, retry_max_seconds=3600.0)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 60.0), (1, 60.0), (2, 120.0), (3, 240.0), (4, 480.0), (6, 1920.0), (7, 3600.0)],
)
def test_retry_delay_doubles_from_the_initial_delay(attempt: int, expected: float) -> None:
    assert retry_delay(attempt, DELIVERY, MidpointRandom()) == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [7, 8, 20, 100])
def test_retry_delay_is_capped_at_retry_max_seconds(attempt: int) -> None:
    rng = random.Random(1)
    delays = [retry_delay(attempt, DELIVERY, rng) for _ in range(200)]

    assert max(delays) <= 3600.0
    assert min(delays) >= 0.8 * 3600.0
    # Still jittered below the cap, so notices held back together do not retry together.
    assert min(delays) < 0.85 * 3600.0
    assert len(set(delays)) > 50


@pytest.mark.parametrize("attempt", [1, 2, 3, 5])
def test_retry_delay_jitter_stays_within_20_percent(attempt: int) -> None:
    rng = random.Random(20261122)
    base = 60.0 * 2 ** (attempt - 1)
    delays = [retry_delay(attempt, DELIVERY, rng) for _ in range(500)]

    assert all(0.8 * base <= delay <= 1.2 * base for delay in delays)
    assert len(set(delays)) > 400  # jitter actually varies
    assert min(delays) < 0.85 * base
    assert max(delays) > 1.15 * base


def test_retry_delay_is_reproducible_with_a_seeded_random() -> None:
    first = [retry_delay(n, DELIVERY, random.Random(7)) for n in range(1, 6)]
    second = [retry_delay(n, DELIVERY, random.Random(7)) for n in range(1, 6)]

    assert first == second


def test_retry_delay_stays_capped_for_very_many_attempts() -> None:
    flat = DeliverySettings(retry_initial_seconds=60.0, retry_max_seconds=60.0)

    assert 48.0 <= retry_delay(2000, flat, random.Random(1)) <= 60.0
