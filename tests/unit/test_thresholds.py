"""Low-credit crossings with hysteresis, and days of credit left (SPEC §5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from notifyd.model import Level
from notifyd.rules.thresholds import cross, days_left, effective
from notifyd.settings import Thresholds

LIMITS = Thresholds(low=Decimal("5"), critical=Decimal("1"), hysteresis=Decimal("2"))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def run(balances: list[str], limits: Thresholds = LIMITS) -> list[Level | None]:
    level = Level.OK
    notices = []
    for balance in balances:
        crossing = cross(level, Decimal(balance), limits)
        level = crossing.level
        notices.append(crossing.notify)
    return notices


def test_going_below_low_notifies_once() -> None:
    assert run(["10", "4.99", "4", "3", "2"]) == [None, Level.LOW, None, None, None]


def test_going_below_critical_notifies_once_more() -> None:
    assert run(["10", "4", "0.5", "0.2"]) == [None, Level.LOW, Level.CRITICAL, None]


def test_straight_to_critical_sends_only_the_critical_notice() -> None:
    assert run(["10", "0.5"]) == [None, Level.CRITICAL]


def test_exactly_at_the_threshold_is_not_below_it() -> None:
    assert run(["5", "1"]) == [None, Level.LOW]


def test_no_repeat_until_a_top_up_lifts_above_threshold_plus_hysteresis() -> None:
    # down, wobble just above low (within hysteresis), down again: one notice.
    assert run(["4", "6", "4", "6.5", "4"]) == [Level.LOW, None, None, None, None]
    # down, top-up above low + hysteresis (7), down again: a second notice.
    assert run(["4", "7.01", "4"]) == [Level.LOW, None, Level.LOW]


def test_critical_re_arms_above_critical_plus_hysteresis_only() -> None:
    assert run(["0.5", "2.5", "0.5"]) == [Level.CRITICAL, None, None]
    assert run(["0.5", "3.5", "0.5"]) == [Level.CRITICAL, None, Level.CRITICAL]


def test_a_top_up_to_between_the_levels_re_arms_critical_but_not_low() -> None:
    assert run(["0.5", "4", "0.5", "4.5"]) == [Level.CRITICAL, None, Level.CRITICAL, None]


def test_a_subscriber_may_ask_to_hear_earlier_never_later() -> None:
    assert effective(LIMITS, Decimal("20")).low == Decimal("20")
    assert effective(LIMITS, Decimal("2")).low == Decimal("5")
    assert effective(LIMITS, None) == LIMITS
    assert effective(LIMITS, Decimal("20")).critical == Decimal("1")


@given(st.lists(st.decimals(min_value=-10, max_value=30, places=2), max_size=40))
def test_between_two_low_notices_the_balance_rose_above_low_plus_hysteresis(
    balances: list[Decimal],
) -> None:
    level = Level.OK
    notified_at: int | None = None
    for index, balance in enumerate(balances):
        crossing = cross(level, balance, LIMITS)
        if crossing.notify is Level.LOW:
            if notified_at is not None:
                between = balances[notified_at + 1 : index]
                assert any(b > LIMITS.low + LIMITS.hysteresis for b in between)
            notified_at = index
        assert crossing.notify is None or crossing.notify != level  # never the same twice
        level = crossing.level


def test_days_left_at_the_recent_spending_rate() -> None:
    history = [
        (NOW - timedelta(days=4), Decimal("30")),
        (NOW - timedelta(days=2), Decimal("20")),
        (NOW, Decimal("10")),
    ]
    # 20 spent in 4 days: 5 a day; 10 left lasts 2 days.
    assert days_left(history, Decimal("10"), NOW) == 2


def test_top_ups_are_not_negative_spending() -> None:
    history = [
        (NOW - timedelta(days=2), Decimal("10")),
        (NOW - timedelta(days=1), Decimal("60")),  # a top-up of 50
        (NOW, Decimal("56")),
    ]
    # spent 4 in 2 days: 2 a day.
    assert days_left(history, Decimal("4"), NOW) == 2


def test_days_left_unknown_without_a_day_of_history_or_spending() -> None:
    assert days_left([(NOW, Decimal("5"))], Decimal("5"), NOW) is None
    short = [(NOW - timedelta(hours=3), Decimal("9")), (NOW, Decimal("5"))]
    assert days_left(short, Decimal("5"), NOW) is None
    flat = [(NOW - timedelta(days=3), Decimal("5")), (NOW, Decimal("5"))]
    assert days_left(flat, Decimal("5"), NOW) is None


def test_history_older_than_the_window_is_ignored() -> None:
    history = [
        (NOW - timedelta(days=30), Decimal("1000")),
        (NOW - timedelta(days=2), Decimal("12")),
        (NOW, Decimal("10")),
    ]
    assert days_left(history, Decimal("10"), NOW) == 10
