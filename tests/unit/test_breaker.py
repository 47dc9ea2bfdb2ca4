"""The relay circuit breaker (issue 5): a relay that refuses everything pauses delivery
instead of failing every notice. Pure state, the clock passed in as seconds."""

from __future__ import annotations

from uuid import UUID, uuid4

from notifyd.delivery.breaker import MAX_COOLDOWN, Breaker, State


def refuse_all(breaker: Breaker, addresses: list[str], now: float) -> list[list[UUID] | None]:
    return [breaker.refused(uuid4(), address, now) for address in addresses]


def test_closed_breaker_sets_no_limit() -> None:
    breaker = Breaker(threshold=3, cooldown=10)
    assert breaker.allowance(0.0) is None
    assert not breaker.is_open
    assert breaker.trips == 0
    assert breaker.wait(0.0) == 0.0


def test_opens_after_threshold_refusals_for_as_many_different_addresses() -> None:
    breaker = Breaker(threshold=3, cooldown=10)
    assert breaker.refused(uuid4(), "a@x.example", 100.0) is None
    assert breaker.refused(uuid4(), "b@x.example", 100.5) is None
    assert not breaker.is_open
    assert breaker.allowance(100.5) is None
    assert breaker.refused(uuid4(), "c@y.example", 101.0) is not None
    assert breaker.is_open
    assert breaker.state is State.OPEN
    assert breaker.trips == 1
    assert breaker.allowance(101.0) == 0  # paused
    assert breaker.allowance(110.9) == 0
    assert breaker.wait(101.0) == 10.0
    assert breaker.wait(106.0) == 5.0


def test_the_same_address_refused_again_and_again_does_not_open() -> None:
    """One mailbox that does not exist is that address's problem, not the relay's."""
    breaker = Breaker(threshold=3, cooldown=10)
    results = refuse_all(breaker, ["gone@x.example"] * 20, 0.0)
    assert results == [None] * 20
    assert not breaker.is_open
    assert breaker.allowance(0.0) is None


def test_addresses_are_compared_without_regard_to_case() -> None:
    breaker = Breaker(threshold=3, cooldown=10)
    refuse_all(breaker, ["Gone@X.example", "gone@x.example", "GONE@X.EXAMPLE"], 0.0)
    assert not breaker.is_open
    refuse_all(breaker, ["other@x.example", "third@x.example"], 0.0)
    assert breaker.is_open


def test_repeated_addresses_count_once_towards_the_threshold() -> None:
    breaker = Breaker(threshold=3, cooldown=10)
    results = refuse_all(breaker, ["a@x.example", "a@x.example", "b@x.example", "b@x.example"], 0)
    assert results == [None] * 4
    assert not breaker.is_open
    assert breaker.refused(uuid4(), "c@x.example", 0) is not None
    assert breaker.is_open


def test_a_success_between_refusals_resets_the_streak() -> None:
    breaker = Breaker(threshold=3, cooldown=10)
    refuse_all(breaker, ["a@x.example", "b@x.example"], 0.0)
    breaker.succeeded()
    refuse_all(breaker, ["c@x.example", "d@x.example"], 1.0)
    assert not breaker.is_open
    breaker.succeeded()
    assert breaker.refused(uuid4(), "e@x.example", 2.0) is None
    assert not breaker.is_open


def test_opening_returns_the_earlier_notices_of_the_streak() -> None:
    """They were recorded as failed before anyone knew the relay was at fault: the caller
    puts them back in the queue. The refusal that opens the breaker is not among them (the
    caller holds it itself)."""
    breaker = Breaker(threshold=3, cooldown=10)
    first, second, third, fourth = uuid4(), uuid4(), uuid4(), uuid4()
    assert breaker.refused(first, "a@x.example", 0.0) is None
    assert breaker.refused(second, "a@x.example", 0.0) is None
    assert breaker.refused(third, "b@x.example", 0.0) is None
    assert breaker.refused(fourth, "c@x.example", 0.0) == [first, second, third]
    assert breaker.streak == []


def test_a_streak_before_a_success_is_not_returned_at_the_next_opening() -> None:
    breaker = Breaker(threshold=2, cooldown=10)
    old = uuid4()
    breaker.refused(old, "a@x.example", 0.0)
    breaker.succeeded()
    mine, last = uuid4(), uuid4()
    breaker.refused(mine, "b@x.example", 1.0)
    assert breaker.refused(last, "c@x.example", 1.0) == [mine]


def state_of(breaker: Breaker) -> State:
    """The state read afresh: asserting `breaker.state is X` would narrow the property for
    mypy, which then calls the next state check after a transition impossible."""
    return breaker.state


def test_after_the_cooldown_one_probe_and_its_success_closes() -> None:
    breaker = Breaker(threshold=2, cooldown=10)
    refuse_all(breaker, ["a@x.example", "b@x.example"], 0.0)
    assert breaker.allowance(9.99) == 0
    assert breaker.allowance(10.0) == 1  # half open: one notice
    assert state_of(breaker) is State.HALF_OPEN
    assert breaker.is_open  # still holding delivery until the probe succeeds
    breaker.succeeded()
    assert breaker.state is State.CLOSED
    assert not breaker.is_open
    assert breaker.allowance(10.1) is None
    assert breaker.trips == 1


def test_a_refused_probe_reopens_with_a_doubled_cooldown() -> None:
    breaker = Breaker(threshold=2, cooldown=10)
    refuse_all(breaker, ["a@x.example", "b@x.example"], 0.0)
    assert breaker.allowance(10.0) == 1
    probe = uuid4()
    # One refusal of the probe is enough, whatever its address.
    assert breaker.refused(probe, "a@x.example", 10.0) == []
    assert breaker.state is State.OPEN
    assert breaker.trips == 2
    assert breaker.wait(10.0) == 20.0
    assert breaker.allowance(29.9) == 0
    assert breaker.allowance(30.0) == 1
    breaker.refused(uuid4(), "c@x.example", 30.0)
    assert breaker.wait(30.0) == 40.0


def test_the_cooldown_doubles_up_to_an_hour() -> None:
    breaker = Breaker(threshold=1, cooldown=1000)
    now = 0.0
    breaker.refused(uuid4(), "a@x.example", now)
    waits = [breaker.wait(now)]
    for _ in range(6):
        now += breaker.wait(now)
        assert breaker.allowance(now) == 1
        breaker.refused(uuid4(), "a@x.example", now)
        waits.append(breaker.wait(now))
    assert MAX_COOLDOWN == 3600.0
    assert waits == [1000.0, 2000.0, 3600.0, 3600.0, 3600.0, 3600.0, 3600.0]


def test_a_success_after_a_trip_resets_the_cooldown() -> None:
    breaker = Breaker(threshold=1, cooldown=5)
    breaker.refused(uuid4(), "a@x.example", 0.0)
    assert breaker.allowance(5.0) == 1
    breaker.refused(uuid4(), "a@x.example", 5.0)
    assert breaker.wait(5.0) == 10.0
    assert breaker.allowance(15.0) == 1
    breaker.succeeded()
    breaker.refused(uuid4(), "a@x.example", 100.0)
    assert breaker.wait(100.0) == 5.0  # the configured cooldown again, not 20


def test_a_refused_login_opens_at_once() -> None:
    breaker = Breaker(threshold=5, cooldown=10)
    breaker.refused_us(50.0)
    assert breaker.is_open
    assert breaker.trips == 1
    assert breaker.allowance(50.0) == 0
    assert breaker.wait(50.0) == 10.0
    # Further refused logins while open do not extend the pause or count as trips.
    breaker.refused_us(55.0)
    assert breaker.trips == 1
    assert breaker.wait(55.0) == 5.0
    # The probe's login is refused again: open again, for longer.
    assert breaker.allowance(60.0) == 1
    breaker.refused_us(60.0)
    assert breaker.state is State.OPEN
    assert breaker.trips == 2
    assert breaker.wait(60.0) == 20.0


def test_threshold_zero_never_opens() -> None:
    breaker = Breaker(threshold=0, cooldown=10)
    addresses = [f"user{n}@x.example" for n in range(50)]
    assert refuse_all(breaker, addresses, 0.0) == [None] * 50
    breaker.refused_us(0.0)
    assert not breaker.is_open
    assert breaker.allowance(0.0) is None
    assert breaker.trips == 0
