"""The monthly credit statement's pure rules (rules/statements.py): what each billing event
adds to its month, in the subscriber's zone; when a month's statement is due; what it
says, days left included."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from notifyd.catalogue.events import Event, parse_event
from notifyd.catalogue.samples import SAMPLE_STATEMENT, sample_event
from notifyd.model import Level
from notifyd.rules.statements import content, entry, last_due, send_point
from notifyd.rules.thresholds import days_left

ZONE = "Europe/Bucharest"


def event(kind: str, moment: datetime, **data: object) -> Event:
    body = sample_event(kind, "acc-1", now=moment, currency="RON", **data)
    return parse_event(json.dumps(body).encode())


def test_a_top_up_opens_at_the_balance_before_it_and_counts_as_a_top_up() -> None:
    moment = datetime(2026, 11, 10, 12, tzinfo=UTC)
    added = entry(
        event("billing.credit_added", moment, amount="50.00", new_balance="70.00"), None, ZONE
    )
    assert added is not None
    assert (added.opening, added.balance, added.top_up) == (
        Decimal("20.00"),
        Decimal("70.00"),
        Decimal("50.00"),
    )
    assert added.period == date(2026, 11, 1)


def test_the_month_is_the_subscribers_local_one() -> None:
    # 23:30 UTC on 30 November is 01:30 on 1 December in Bucharest.
    late = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    balance = entry(event("billing.balance_updated", late, balance="4.00"), Level.LOW, ZONE)
    assert balance is not None
    assert balance.period == date(2026, 12, 1)
    assert (balance.low, balance.critical) == (1, 0)
    in_utc = entry(event("billing.balance_updated", late, balance="4.00"), None, "UTC")
    assert in_utc is not None
    assert in_utc.period == date(2026, 11, 1)


def test_payments_and_limits_carry_no_balance_and_other_events_nothing() -> None:
    moment = datetime(2026, 11, 10, 12, tzinfo=UTC)
    paid = entry(event("billing.payment_confirmed", moment, amount="119.00"), None, ZONE)
    assert paid is not None
    assert (paid.balance, paid.payment) == (None, Decimal("119.00"))
    limit = entry(event("usage.daily_limit_exceeded", moment), None, ZONE)
    assert limit is not None
    assert limit.limit == 1
    call = parse_event(json.dumps(sample_event("call.missed", "acc-1", now=moment)).encode())
    assert entry(call, None, ZONE) is None


def test_the_statement_is_due_at_the_local_time_of_the_day_across_summer_time() -> None:
    # Bucharest is UTC+3 in summer, UTC+2 in winter.
    assert send_point(date(2026, 6, 1), ZONE, 1, time(8, 0)) == datetime(2026, 7, 1, 5, tzinfo=UTC)
    assert send_point(date(2026, 12, 1), ZONE, 2, time(8, 0)) == datetime(2027, 1, 2, 6, tzinfo=UTC)


def test_days_left_are_the_thresholds_spending_rate_and_the_sample_adds_up() -> None:
    now = datetime(2026, 11, 1, 8, tzinfo=UTC)
    history = [(now - timedelta(days=7), Decimal("32.75")), (now, Decimal("23.75"))]
    left = days_left(history, Decimal("23.75"), now)
    said = content(
        date(2026, 10, 1),
        [
            {
                "currency": "RON",
                "opening": Decimal("12.40"),
                "closing": Decimal("23.75"),
                "top_ups": 2,
                "top_up_sum": Decimal("50.00"),
                "payments": 1,
                "payment_sum": Decimal("119.00"),
                "low_crossings": 1,
                "critical_crossings": 0,
                "limit_events": 0,
            }
        ],
        {"RON": left},
    )
    # The sample `preview` and `simulate` show is what the job would say of such a month.
    assert said == SAMPLE_STATEMENT


def test_the_job_looks_only_at_periods_due_somewhere_already() -> None:
    # 08:00 on 2 December at UTC+14 is 18:00 on 1 December in UTC: from then on November's
    # statements may be due somewhere (Bucharest's 12 hours later); before, October's at most.
    first = datetime(2026, 12, 1, 18, tzinfo=UTC)
    assert last_due(first, 2, time(8, 0)) == date(2026, 11, 1)
    assert last_due(first - timedelta(minutes=1), 2, time(8, 0)) == date(2026, 10, 1)
    assert send_point(date(2026, 11, 1), ZONE, 2, time(8, 0)) > first
