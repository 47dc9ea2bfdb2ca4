"""Digests without I/O: when a digest is due (local hours, daily time, DST, quiet hours), which
notices route() holds for one, and what a digest counts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifyd.catalogue.events import Category, Event, parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.model import DigestItem, Level, NoticePlan, Preferences, QuietHours, Subscriber
from notifyd.rules.digests import in_order, totals
from notifyd.rules.routing import Facts, Routing, route
from notifyd.rules.schedule import digest_due
from notifyd.rules.thresholds import Crossing
from notifyd.settings import CallSettings, DefaultsSettings

BUCHAREST = "Europe/Bucharest"
KOLKATA = "Asia/Kolkata"
EIGHT = time(8, 0)
NIGHT = QuietHours(time(22, 0), time(7, 0))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def wall(moment: datetime, zone: str = BUCHAREST) -> str:
    """The local clock reading with its offset, e.g. '2026-11-22 13:00 +0200'."""
    return f"{moment.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %z}"


# -- digest_due: hourly ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "now", "due", "local_due"),
    [
        # 12:17 EET -> 13:00 EET.
        (BUCHAREST, "2026-11-22T10:17:00+00:00", "2026-11-22T11:00:00+00:00", "13:00 +0200"),
        # Exactly on the hour: the next hour, not this instant.
        (BUCHAREST, "2026-11-22T10:00:00+00:00", "2026-11-22T11:00:00+00:00", "13:00 +0200"),
        # Summer time: 15:59:59 EEST -> 16:00 EEST.
        (BUCHAREST, "2026-07-01T12:59:59+00:00", "2026-07-01T13:00:00+00:00", "16:00 +0300"),
        # Kolkata is UTC+05:30: its full hours are at :30 UTC. 15:47 IST -> 16:00 IST.
        (KOLKATA, "2026-11-22T10:17:00+00:00", "2026-11-22T10:30:00+00:00", "16:00 +0530"),
        # 15:31 IST (10:01 UTC) -> 16:00 IST, not 11:00 UTC (16:30 IST).
        (KOLKATA, "2026-11-22T10:01:00+00:00", "2026-11-22T10:30:00+00:00", "16:00 +0530"),
        # 23:40 IST -> 00:00 IST on the next local day.
        (KOLKATA, "2026-11-22T18:10:00+00:00", "2026-11-22T18:30:00+00:00", "00:00 +0530"),
    ],
)
def test_hourly_digest_goes_at_the_next_full_hour_of_the_subscribers_clock(
    zone: str, now: str, due: str, local_due: str
) -> None:
    result = digest_due("hourly", utc(now), zone, EIGHT, None)

    assert result == utc(due)
    assert wall(result, zone).endswith(local_due)


@pytest.mark.parametrize(
    ("now", "due", "local_due"),
    [
        # Autumn fall-back in Bucharest, 2026-10-25: 04:00 EEST becomes 03:00 EET at 01:00 UTC,
        # so local 03:00-04:00 happens twice.
        # 02:30 EEST -> 03:00 EEST (the first 03:00).
        ("2026-10-24T23:30:00+00:00", "2026-10-25T00:00:00+00:00", "03:00 +0300"),
        # 03:30 EEST (first pass) -> 03:00 EET (the clocks read 03:00 again an hour later).
        ("2026-10-25T00:30:00+00:00", "2026-10-25T01:00:00+00:00", "03:00 +0200"),
        # 03:30 EET (second pass) -> 04:00 EET.
        ("2026-10-25T01:30:00+00:00", "2026-10-25T02:00:00+00:00", "04:00 +0200"),
        # Spring-forward, 2026-03-29: 03:00 EET becomes 04:00 EEST at 01:00 UTC.
        # 02:30 EET -> 04:00 EEST (03:00 never happens), one real hour on.
        ("2026-03-29T00:30:00+00:00", "2026-03-29T01:00:00+00:00", "04:00 +0300"),
    ],
)
def test_hourly_digest_across_daylight_saving_changes(now: str, due: str, local_due: str) -> None:
    start = utc(now)

    result = digest_due("hourly", start, BUCHAREST, EIGHT, None)

    assert result == utc(due)
    assert wall(result).endswith(local_due)
    assert timedelta(0) < result - start <= timedelta(hours=1)


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2027, 1, 1),
        timezones=st.just(UTC),
    ),
    zone=st.sampled_from([BUCHAREST, KOLKATA, "America/New_York", "Europe/London"]),
)
def test_hourly_digest_is_always_within_the_hour_and_on_a_local_full_hour(
    now: datetime, zone: str
) -> None:
    result = digest_due("hourly", now, zone, EIGHT, None)

    assert timedelta(0) < result - now <= timedelta(hours=1)
    local = result.astimezone(ZoneInfo(zone))
    assert (local.minute, local.second, local.microsecond) == (0, 0, 0)


# -- digest_due: daily -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "digest_time", "due"),
    [
        # 07:00 EET, digest at 08:00: today's is still ahead.
        ("2026-11-22T05:00:00+00:00", EIGHT, "2026-11-22T06:00:00+00:00"),
        # 09:00 EET: today's is gone, tomorrow's.
        ("2026-11-22T07:00:00+00:00", EIGHT, "2026-11-23T06:00:00+00:00"),
        # 08:00 EET sharp: today's is going now, this notice waits for tomorrow's.
        ("2026-11-22T06:00:00+00:00", EIGHT, "2026-11-23T06:00:00+00:00"),
        # 23:50 EET, digest at 00:15: tomorrow's at 00:15, 25 minutes on.
        ("2026-11-22T21:50:00+00:00", time(0, 15), "2026-11-22T22:15:00+00:00"),
        # Summer time: 07:30 EEST is 04:30 UTC.
        ("2026-07-01T03:00:00+00:00", time(7, 30), "2026-07-01T04:30:00+00:00"),
    ],
)
def test_daily_digest_goes_at_the_next_local_digest_time(
    now: str, digest_time: time, due: str
) -> None:
    assert digest_due("daily", utc(now), BUCHAREST, digest_time, None) == utc(due)


def test_daily_digest_in_the_spring_forward_gap_goes_when_the_clocks_jump() -> None:
    # 2026-03-29 in Bucharest: 03:00 EET jumps to 04:00 EEST (01:00 UTC); 03:30 never exists.
    before = utc("2026-03-28T22:00:00+00:00")  # 00:00 EET on the 29th

    due = digest_due("daily", before, BUCHAREST, time(3, 30), None)

    assert due == utc("2026-03-29T01:00:00+00:00")
    assert wall(due) == "2026-03-29 04:00 +0300"
    # The day after, 03:30 exists again: 03:30 EEST = 00:30 UTC.
    after = digest_due("daily", due, BUCHAREST, time(3, 30), None)
    assert after == utc("2026-03-30T00:30:00+00:00")


def test_daily_digest_at_a_repeated_time_takes_its_first_occurrence() -> None:
    # 2026-10-25: 03:30 happens at 00:30 UTC (EEST) and again at 01:30 UTC (EET).
    due = digest_due("daily", utc("2026-10-24T21:00:00+00:00"), BUCHAREST, time(3, 30), None)

    assert due == utc("2026-10-25T00:30:00+00:00")


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2027, 1, 1),
        timezones=st.just(UTC),
    ),
    digest_time=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
)
def test_daily_digest_is_within_a_day_and_at_the_digest_time(
    now: datetime, digest_time: time
) -> None:
    due = digest_due("daily", now, BUCHAREST, digest_time, None)

    assert timedelta(0) < due - now <= timedelta(hours=25)
    local = due.astimezone(ZoneInfo(BUCHAREST))
    if local.time().replace(tzinfo=None) != digest_time:
        # Only in the spring-forward gap, at the jump itself (04:00 EEST).
        assert (local.month, local.hour, local.minute) == (3, 4, 0)
        assert time(3, 0) <= digest_time < time(4, 0)


# -- digest_due: quiet hours -------------------------------------------------------------------


def test_quiet_hours_push_the_nights_hourly_digests_to_one_morning_digest() -> None:
    # Quiet 22:00-07:00 in Bucharest (EET, UTC+2 in November).
    evening = utc("2026-11-22T20:40:00+00:00")  # 22:40: the 23:00 digest is in quiet hours
    arrivals = [
        utc("2026-11-22T19:30:00+00:00"),  # 21:30: the 22:00 digest falls at the start
        evening,
        utc("2026-11-22T23:15:00+00:00"),  # 01:15
        utc("2026-11-23T04:59:00+00:00"),  # 06:59: the 07:00 digest is the end itself
    ]

    dues = {digest_due("hourly", moment, BUCHAREST, EIGHT, NIGHT) for moment in arrivals}

    assert dues == {utc("2026-11-23T05:00:00+00:00")}  # one digest at 07:00 EET
    assert wall(dues.pop()) == "2026-11-23 07:00 +0200"
    # Before and after the night, hourly digests go at the hour as usual.
    assert digest_due("hourly", utc("2026-11-22T18:10:00+00:00"), BUCHAREST, EIGHT, NIGHT) == utc(
        "2026-11-22T19:00:00+00:00"
    )  # 20:10 -> 21:00
    assert digest_due("hourly", utc("2026-11-23T05:10:00+00:00"), BUCHAREST, EIGHT, NIGHT) == utc(
        "2026-11-23T06:00:00+00:00"
    )  # 07:10 -> 08:00


def test_a_daily_time_inside_quiet_hours_goes_when_they_end() -> None:
    due = digest_due("daily", utc("2026-11-22T10:00:00+00:00"), BUCHAREST, time(6, 0), NIGHT)

    assert wall(due) == "2026-11-23 07:00 +0200"


def test_quiet_hours_end_across_the_spring_forward_change() -> None:
    # Quiet 01:00-03:30 on 2026-03-29: 03:30 does not exist, the night ends at the jump.
    window = QuietHours(time(1, 0), time(3, 30))
    due = digest_due("hourly", utc("2026-03-28T23:10:00+00:00"), BUCHAREST, EIGHT, window)

    assert due == utc("2026-03-29T01:00:00+00:00")  # 04:00 EEST


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="not a digest mode"):
        digest_due("weekly", utc("2026-11-22T10:00:00+00:00"), BUCHAREST, EIGHT, None)


# -- route() -----------------------------------------------------------------------------------

DEFAULTS = DefaultsSettings(language="ro", timezone=BUCHAREST, quiet_hours=None)
DAY = utc("2026-11-22T10:17:00+00:00")  # 12:17 EET
LATE = utc("2026-11-22T21:30:00+00:00")  # 23:30 EET


def subscriber(**preferences: Any) -> Subscriber:
    return Subscriber(
        account_id="acc-1001",
        email="ana@client.example",
        name="Ana Popescu",
        preferences=Preferences(**preferences),
    )


def event(event_type: str, now: datetime = DAY, **overrides: Any) -> Event:
    raw = sample_event(event_type, account_id="acc-1001", now=now, **overrides)
    return parse_event(json.dumps(raw).encode())


def decide(
    event_: Event,
    who: Subscriber,
    now: datetime = DAY,
    facts: Facts | None = None,
    defaults: DefaultsSettings = DEFAULTS,
) -> Routing:
    return route(event_, who, facts or Facts(), defaults, CallSettings(), now)


def only(routing: Routing) -> NoticePlan:
    assert routing.skipped is None, routing.skipped
    assert len(routing.notices) == 1
    return routing.notices[0]


def test_calls_in_an_hourly_digest_are_held_for_the_next_hour_with_a_reason() -> None:
    plan = only(decide(event("call.missed"), subscriber(modes={"calls": "hourly"})))

    assert plan.digest == "hourly"
    assert plan.due_at == utc("2026-11-22T11:00:00+00:00")  # 13:00 EET
    assert any("hourly digest" in reason for reason in plan.reasons), plan.reasons
    assert any("2026-11-22 13:00" in reason for reason in plan.reasons), plan.reasons


def test_immediate_calls_are_not_held() -> None:
    plan = only(decide(event("call.missed"), subscriber()))

    assert (plan.digest, plan.due_at) == (None, DAY)


def test_a_daily_digest_uses_the_subscribers_digest_time_over_the_default() -> None:
    defaults = DefaultsSettings(language="ro", timezone=BUCHAREST, quiet_hours=None)
    own = only(decide(event("fax.sent"), subscriber(modes={"fax": "daily"}, digest_time="07:30")))
    default = only(decide(event("fax.sent"), subscriber(modes={"fax": "daily"})))
    later_default = only(
        decide(
            event("fax.sent"),
            subscriber(modes={"fax": "daily"}),
            defaults=DefaultsSettings(
                language="ro", timezone=BUCHAREST, quiet_hours=None, digest_time=time(18, 0)
            ),
        )
    )

    assert defaults.digest_time == EIGHT
    assert own.digest == "daily"
    assert wall(own.due_at) == "2026-11-23 07:30 +0200"
    assert wall(default.due_at) == "2026-11-23 08:00 +0200"
    assert wall(later_default.due_at) == "2026-11-22 18:00 +0200"  # today's is still ahead
    assert any("daily digest" in reason for reason in own.reasons), own.reasons


def test_the_default_mode_can_be_a_digest_too() -> None:
    defaults = DefaultsSettings(
        language="ro", timezone=BUCHAREST, quiet_hours=None, modes={"billing": "hourly"}
    )
    plan = only(decide(event("billing.payment_confirmed"), subscriber(), defaults=defaults))

    assert plan.digest == "hourly"
    assert plan.due_at == utc("2026-11-22T11:00:00+00:00")


def test_a_digest_is_due_in_the_subscribers_own_zone() -> None:
    who = Subscriber(
        "acc-1001",
        "ana@client.example",
        timezone=KOLKATA,
        preferences=Preferences(modes={"calls": "hourly"}),
    )
    plan = only(decide(event("call.missed"), who))

    assert plan.due_at == utc("2026-11-22T10:30:00+00:00")  # 16:00 IST
    assert plan.timezone == KOLKATA


def test_quiet_hours_push_a_held_notice_to_the_morning_digest() -> None:
    who = subscriber(modes={"calls": "hourly"}, quiet_hours="22:00-07:00")
    plan = only(decide(event("call.missed", now=LATE), who, now=LATE))

    assert plan.digest == "hourly"
    assert wall(plan.due_at) == "2026-11-23 07:00 +0200"
    assert plan.reasons[-1] == (
        "calls notices go in the hourly digest: held for the one sent at 2026-11-23 07:00"
        " Europe/Bucharest, when quiet hours 22:00-07:00 end"
    )


def low_credit(level: Level) -> Facts:
    threshold = Decimal("1") if level is Level.CRITICAL else Decimal("5")
    return Facts(credit=Crossing(level, level, threshold))


def test_critical_credit_is_never_put_in_a_digest_even_at_night() -> None:
    who = subscriber(modes={"low_credit": "daily"}, quiet_hours="22:00-07:00")
    balance = event("billing.balance_updated", now=LATE, balance="0.50")

    critical = only(decide(balance, who, now=LATE, facts=low_credit(Level.CRITICAL)))
    low = only(decide(balance, who, now=LATE, facts=low_credit(Level.LOW)))

    assert (critical.kind, critical.digest, critical.due_at) == ("credit.critical", None, LATE)
    assert "not put in the daily digest: this notice cannot wait" in critical.reasons
    # A mere low-credit warning does go in the daily digest.
    assert (low.kind, low.digest) == ("credit.low", "daily")
    assert low.due_at > LATE


@pytest.mark.parametrize("mode", ["hourly", "daily"])
def test_security_notices_are_never_digested(mode: str) -> None:
    # Neither a stored choice (the API refuses it) nor a default can hold them. The settings
    # refuse such defaults too: model_copy() makes one anyway, to show routing does not rely
    # on that.
    defaults = DefaultsSettings(language="ro", timezone=BUCHAREST, quiet_hours=NIGHT).model_copy(
        update={"modes": {"security": mode, "service": mode}}
    )
    who = subscriber(modes={"security": mode, "service": mode}, quiet_hours="22:00-07:00")

    for kind in ("account.password_changed", "account.pin_created"):
        plan = only(decide(event(kind, now=LATE), who, now=LATE, defaults=defaults))
        assert plan.category is Category.SECURITY
        assert (plan.digest, plan.due_at) == (None, LATE)
        assert "sent at once: never waits for quiet hours" in plan.reasons


def test_an_email_change_is_never_digested() -> None:
    who = subscriber(modes={"security": "daily"})
    routing = decide(
        event("account.updated", email="new@client.example"),
        who,
        facts=Facts(previous_email="old@client.example"),
    )

    assert [plan.digest for plan in routing.notices] == [None, None]
    assert {plan.due_at for plan in routing.notices} == {DAY}


def test_off_still_skips() -> None:
    routing = decide(event("call.missed"), subscriber(modes={"calls": "off"}))

    assert routing.notices == ()
    assert routing.skipped
    assert routing.skipped.reason == "the subscriber turned calls notices off"


def test_every_address_of_a_digested_notice_is_held_for_the_same_digest() -> None:
    who = subscriber(
        modes={"calls": "hourly", "fax": "daily"},
        extra_emails=("office@client.example",),
        addresses={"fax": ("fax1@client.example", "fax2@client.example")},
    )

    calls = decide(event("call.missed"), who).notices
    faxes = decide(event("fax.sent"), who).notices

    assert [p.recipient for p in calls] == ["ana@client.example", "office@client.example"]
    assert [p.recipient for p in faxes] == ["fax1@client.example", "fax2@client.example"]
    assert {(p.digest, p.due_at) for p in calls} == {("hourly", utc("2026-11-22T11:00:00+00:00"))}
    assert {p.digest for p in faxes} == {"daily"}
    assert len({p.due_at for p in faxes}) == 1
    assert {p.dedupe_key for p in calls} == {calls[0].dedupe_key}  # one call, per address


# -- totals() and in_order() -------------------------------------------------------------------

T0 = utc("2026-11-22T10:00:00+00:00")


def item(kind: str, minute: int = 0, **data: Any) -> DigestItem:
    return DigestItem(kind=kind, occurred_at=T0 + timedelta(minutes=minute), data=data)


def test_totals_count_each_kind_in_the_order_kinds_first_appear() -> None:
    items = [
        item("voicemail.received", caller_number="+40721555001"),
        item("call.missed", caller_number="+40721555002"),
        item("voicemail.received", caller_number="+40721555003"),
        item("call.missed", caller_number="+40721555004"),
        item("call.missed", caller_number="+40721555005"),
    ]

    result = totals(items)

    assert result["count"] == 5
    assert result["kinds"] == [
        {"kind": "voicemail.received", "count": 2},
        {"kind": "call.missed", "count": 3},
    ]
    assert result["callers"] == []  # nobody called twice
    json.dumps(result)  # ready for the templates


def test_totals_name_callers_heard_more_than_once_most_frequent_first_at_most_three() -> None:
    counts = {"+40721555001": 2, "+40721555002": 5, "+40721555003": 1, "+40721555004": 3}
    counts |= {"+40721555005": 2}
    items = [
        item("call.missed", caller_number=number)
        for number, times in counts.items()
        for _ in range(times)
    ]
    # A voicemail counts towards its caller as a missed call does; a fax does not.
    items += [item("voicemail.received", caller_number="+40721555001")]
    items += [item("fax.received", remote_number="+40721555003")] * 4
    items += [item("call.missed", caller_number=None), item("call.missed")]  # anonymous

    result = totals(items)

    assert result["callers"] == [
        {"number": "+40721555002", "count": 5},
        {"number": "+40721555001", "count": 3},
        {"number": "+40721555004", "count": 3},
    ]


def test_totals_leave_out_callers_heard_from_once_even_among_the_top_three() -> None:
    items = [item("call.missed", caller_number="+40721555123")] * 3 + [
        item("call.missed", caller_number="+40721555001"),
        item("call.missed", caller_number="+40721555002"),
    ]

    assert totals(items)["callers"] == [{"number": "+40721555123", "count": 3}]
    assert totals([])["kinds"] == []


def test_in_order_sorts_by_when_the_events_happened() -> None:
    items = [item("call.missed", 5), item("fax.sent", 1), item("call.missed", 3)]

    assert [i.occurred_at.minute for i in in_order(items)] == [1, 3, 5]
