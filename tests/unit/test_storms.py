"""Storms (SPEC §5 "Bursts coalesce"): the first missed call goes at once, later ones
within the window wait for one follow-up email; past the hourly cap a category's notices
wait for the hourly digest. Pure routing, fed with the address's recent emails."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

from notifyd.catalogue.events import Event, parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.model import NoticePlan, QuietHours, RecentEmails, Subscriber
from notifyd.rules.routing import Facts, route
from notifyd.settings import CallSettings, DefaultsSettings

DEFAULTS = DefaultsSettings(timezone="Europe/Bucharest", quiet_hours=QuietHours(time(22), time(8)))
CALLS = CallSettings(burst_window_seconds=300)
DAYTIME = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # 12:00 in Bucharest
ANA = Subscriber(account_id="acc-1", email="Ana@client.example")


def event(event_type: str, now: datetime = DAYTIME, **overrides: Any) -> Event:
    raw = sample_event(event_type, account_id="acc-1", now=now, **overrides)
    return parse_event(json.dumps(raw).encode())


def plan(
    event_: Event,
    recent: RecentEmails | None,
    *,
    now: datetime = DAYTIME,
    cap: int = 0,
    calls: CallSettings = CALLS,
) -> NoticePlan:
    facts = Facts(recent={"ana@client.example": recent} if recent else {})
    [only] = route(event_, ANA, facts, DEFAULTS, calls, now, hourly_cap=cap).notices
    return only


def test_the_first_missed_call_goes_at_once() -> None:
    first = plan(event("call.missed"), None)
    quiet_since = plan(event("call.missed"), RecentEmails(1, DAYTIME - timedelta(minutes=6)))

    assert (first.due_at, first.digest) == (DAYTIME, None)
    assert (quiet_since.due_at, quiet_since.digest) == (DAYTIME, None)


def test_a_call_within_the_window_waits_for_the_follow_up_at_the_end_of_the_window() -> None:
    last = DAYTIME - timedelta(minutes=2)

    held = plan(event("call.missed"), RecentEmails(1, last))

    assert held.digest == "burst"
    assert held.due_at == last + timedelta(minutes=5)
    assert any("burst" in reason for reason in held.reasons)


def test_night_calls_after_the_first_gather_behind_the_morning_email() -> None:
    night = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 01:00 local
    morning = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 08:00 local: the first call's email

    first = plan(event("call.missed", now=night), None, now=night)
    second = plan(event("call.missed", now=night), RecentEmails(1, morning), now=night)

    assert (first.due_at, first.digest) == (morning, None)
    assert (second.due_at, second.digest) == (morning + timedelta(minutes=5), "burst")


def test_no_window_means_every_call_its_own_email() -> None:
    recent = RecentEmails(1, DAYTIME - timedelta(seconds=10))

    alone = plan(event("call.missed"), recent, calls=CallSettings(burst_window_seconds=0))

    assert (alone.due_at, alone.digest) == (DAYTIME, None)


def test_bursts_are_for_missed_calls_only() -> None:
    recent = RecentEmails(1, DAYTIME - timedelta(seconds=10))

    fax = plan(event("fax.sent"), recent)

    assert (fax.due_at, fax.digest) == (DAYTIME, None)


def test_past_the_hourly_cap_a_notice_waits_for_the_hourly_digest() -> None:
    below = plan(event("fax.sent"), RecentEmails(2, DAYTIME), cap=3)
    capped = plan(event("fax.sent"), RecentEmails(3, DAYTIME), cap=3)
    call = plan(event("call.missed"), RecentEmails(3, DAYTIME - timedelta(hours=1)), cap=3)

    assert below.digest is None
    assert capped.digest == "hourly"
    assert capped.due_at == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)  # 13:00 local
    assert any("hourly cap of 3" in reason for reason in capped.reasons)
    assert call.digest == "hourly"


def test_mandatory_and_urgent_notices_are_never_held_by_storms() -> None:
    busy = RecentEmails(100, DAYTIME)

    security = plan(event("account.password_changed"), busy, cap=3)
    reset = plan(event("account.password_reset_requested"), busy, cap=3)

    assert (security.due_at, security.digest) == (DAYTIME, None)
    assert (reset.due_at, reset.digest) == (DAYTIME, None)


def test_the_address_is_matched_without_regard_to_case() -> None:
    # ANA's address is "Ana@client.example"; recent emails are keyed in lower case.
    held = plan(event("call.missed"), RecentEmails(1, DAYTIME - timedelta(seconds=30)))

    assert held.digest == "burst"


def test_a_call_joins_the_follow_up_already_being_gathered() -> None:
    # The first call's email moved (queued -> sent a moment later): the burst keeps one time.
    gathering = DAYTIME + timedelta(minutes=4)
    recent = RecentEmails(1, DAYTIME - timedelta(seconds=59), burst_at=gathering)

    held = plan(event("call.missed"), recent)

    assert (held.due_at, held.digest) == (gathering, "burst")


def test_past_the_cap_in_long_quiet_hours_the_digest_is_the_one_when_they_end() -> None:
    """Quiet hours of 23 h 59 min (a subscriber's 00:01-00:00): the hour after they end is
    quiet again, so the digest of that hour would have held the notice a second day, past a
    missed call's one-day lifetime. It goes in the digest sent when these quiet hours end."""
    nearly_always = DefaultsSettings(
        timezone="Europe/Bucharest", quiet_hours=QuietHours(time(0, 1), time(0, 0))
    )
    facts = Facts(recent={"ana@client.example": RecentEmails(3, DAYTIME)})

    [capped] = route(
        event("fax.sent"), ANA, facts, nearly_always, CALLS, DAYTIME, hourly_cap=3
    ).notices

    assert capped.digest == "hourly"
    assert capped.due_at == datetime(2026, 11, 22, 22, 0, tzinfo=UTC)  # 00:00 local
