"""Per-destination-domain pacing (issue 5): each recipient domain gets at most `rate`
messages per second; the clock is passed in as seconds."""

from __future__ import annotations

import pytest

from notifyd.delivery.pacing import Pacer


def test_sends_to_one_domain_are_spaced_by_one_over_the_rate() -> None:
    pacer = Pacer(rate=5)
    waits = [pacer.reserve(f"user{n}@gmail.example", 100.0) for n in range(6)]
    assert waits == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_a_send_after_the_slot_has_passed_goes_at_once() -> None:
    pacer = Pacer(rate=2)
    assert pacer.reserve("a@x.example", 0.0) == 0.0
    assert pacer.reserve("b@x.example", 0.1) == pytest.approx(0.4)
    # Long after: no debt is carried over, and no burst is allowed either.
    assert pacer.reserve("c@x.example", 10.0) == 0.0
    assert pacer.reserve("d@x.example", 10.0) == pytest.approx(0.5)


def test_the_waits_follow_the_clock() -> None:
    pacer = Pacer(rate=4)
    assert pacer.reserve("a@x.example", 0.0) == 0.0
    assert pacer.reserve("a@x.example", 0.0) == pytest.approx(0.25)
    # The third slot is at 0.5; asked at 0.3, it waits 0.2.
    assert pacer.reserve("a@x.example", 0.3) == pytest.approx(0.2)


def test_domains_are_paced_independently() -> None:
    pacer = Pacer(rate=1)
    for _ in range(10):
        pacer.reserve("someone@busy.example", 0.0)
    assert pacer.reserve("first@quiet.example", 0.0) == 0.0
    assert pacer.reserve("second@quiet.example", 0.0) == pytest.approx(1.0)
    assert pacer.reserve("last@busy.example", 0.0) == pytest.approx(10.0)


def test_a_domain_override_takes_precedence() -> None:
    pacer = Pacer(rate=1, rates={"big.example": 10})
    big = [pacer.reserve("a@big.example", 0.0) for _ in range(3)]
    small = [pacer.reserve("a@small.example", 0.0) for _ in range(3)]
    assert big == pytest.approx([0.0, 0.1, 0.2])
    assert small == pytest.approx([0.0, 1.0, 2.0])


def test_rate_zero_means_no_pacing() -> None:
    pacer = Pacer(rate=0)
    assert [pacer.reserve("a@x.example", 0.0) for _ in range(100)] == [0.0] * 100


def test_a_zero_override_exempts_one_domain() -> None:
    pacer = Pacer(rate=1, rates={"own.example": 0})
    assert [pacer.reserve("a@own.example", 0.0) for _ in range(5)] == [0.0] * 5
    assert pacer.reserve("a@other.example", 0.0) == 0.0
    assert pacer.reserve("a@other.example", 0.0) == pytest.approx(1.0)


def test_an_override_applies_when_the_default_is_unlimited() -> None:
    pacer = Pacer(rate=0, rates={"slow.example": 2})
    assert pacer.reserve("a@fast.example", 0.0) == 0.0
    assert pacer.reserve("b@fast.example", 0.0) == 0.0
    assert pacer.reserve("a@slow.example", 0.0) == 0.0
    assert pacer.reserve("b@slow.example", 0.0) == pytest.approx(0.5)


def test_domains_are_compared_without_regard_to_case() -> None:
    pacer = Pacer(rate=2, rates={"big.example": 4})
    assert pacer.reserve("a@Example.COM", 0.0) == 0.0
    assert pacer.reserve("b@example.com", 0.0) == pytest.approx(0.5)
    assert pacer.reserve("c@EXAMPLE.com", 0.0) == pytest.approx(1.0)
    # The override, configured in lower case, applies to an address written in capitals.
    assert pacer.reserve("A@BIG.EXAMPLE", 0.0) == 0.0
    assert pacer.reserve("b@Big.Example", 0.0) == pytest.approx(0.25)


def test_many_domains_do_not_lose_the_pace_of_a_busy_one() -> None:
    """The map of domains is pruned when it grows; a domain still waiting keeps its slot."""
    pacer = Pacer(rate=1)
    for _ in range(5):
        pacer.reserve("a@busy.example", 0.0)
    for n in range(10_050):
        pacer.reserve(f"a@d{n}.example", 0.0 + n * 1e-6)
    assert pacer.reserve("b@busy.example", 0.5) == pytest.approx(4.5)


def test_domains_booked_beyond_the_horizon_are_throttled() -> None:
    pacer = Pacer(rate=5)
    for _ in range(8):  # slots at 0, 0.2 ... 1.4
        pacer.reserve("a@busy.example", 0.0)
    pacer.reserve("a@calm.example", 0.0)
    assert pacer.throttled(0.0, horizon=1.0) == ["busy.example"]
    # The next slot (1.6) is within the horizon from 0.6 on.
    assert pacer.release_in(0.0, horizon=1.0) == pytest.approx(0.6)
    assert pacer.throttled(0.61, horizon=1.0) == []
    assert pacer.release_in(0.61, horizon=1.0) == 0.0


def test_nothing_is_throttled_without_pacing() -> None:
    pacer = Pacer(rate=0)
    for _ in range(100):
        pacer.reserve("a@busy.example", 0.0)
    assert pacer.throttled(0.0, horizon=1.0) == []
    assert pacer.release_in(0.0, horizon=1.0) == 0.0
