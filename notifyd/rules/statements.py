"""The monthly credit statement (category `statement`, kind `billing.statement`): pure
rules, no I/O.

What one billing event adds to its period's running record (`entry`, stored by the wave
that stores the event: storage/waves.py), when a period's statement is due in the
subscriber's zone (`send_point`), and what the email says (`content`). The job that queues
it is jobs.py, its rows storage/statements.py, its template templates/billing.statement.*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from notifyd.catalogue.events import (
    BalanceUpdated,
    CreditAdded,
    DailyLimitExceeded,
    Event,
    PaymentConfirmed,
)
from notifyd.model import Level, StatementEntry

STATEMENT_KIND = "billing.statement"
# The zone whose clock is furthest ahead (UTC+14): no subscriber's statement is due before
# it is due there.
EARLIEST_ZONE = "Pacific/Kiritimati"


def period_of(moment: datetime, zone: str) -> date:
    """The first day of the local month `moment` falls in."""
    return moment.astimezone(ZoneInfo(zone)).date().replace(day=1)


def next_period(period: date) -> date:
    return (period.replace(day=28) + timedelta(days=4)).replace(day=1)


def entry(event: Event, crossed: Level | None, zone: str) -> StatementEntry | None:
    """What `event` adds to the statement of its month (`crossed`: the low-credit notice its
    balance crossed into, if any); None for an event a statement does not tell."""
    data = event.data
    balance = opening = top_up = payment = None
    if isinstance(data, BalanceUpdated):
        balance = opening = Decimal(data.balance)
    elif isinstance(data, CreditAdded):
        balance, top_up = Decimal(data.new_balance), Decimal(data.amount)
        opening = balance - top_up
    elif isinstance(data, PaymentConfirmed):
        payment = Decimal(data.amount)
    elif not isinstance(data, DailyLimitExceeded):
        return None
    return StatementEntry(
        account_id=data.account_id,
        period=period_of(event.timestamp, zone),
        currency=data.currency,
        balance=balance,
        at=event.timestamp,
        opening=opening,
        top_up=top_up,
        payment=payment,
        low=int(isinstance(data, BalanceUpdated) and crossed is Level.LOW),
        critical=int(isinstance(data, BalanceUpdated) and crossed is Level.CRITICAL),
        limit=int(isinstance(data, DailyLimitExceeded)),
    )


def send_point(period: date, zone: str, day_of_month: int, at: time) -> datetime:
    """When the statement of `period` goes out: `day_of_month` of the next month at `at`,
    the subscriber's local time, in UTC."""
    local = datetime.combine(next_period(period).replace(day=day_of_month), at)
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def last_due(now: datetime, day_of_month: int, at: time) -> date:
    """The latest period whose statement may be due somewhere at `now`: the job need not
    look at later ones (whose rows are all of the month still running, or not yet due)."""
    local = now.astimezone(ZoneInfo(EARLIEST_ZONE)).date().replace(day=1)
    previous = (local - timedelta(days=1)).replace(day=1)
    if send_point(previous, EARLIEST_ZONE, day_of_month, at) <= now:
        return previous
    return (previous - timedelta(days=1)).replace(day=1)


def content(
    period: date, rows: Sequence[Mapping[str, Any]], days_left: Mapping[str, int | None]
) -> dict[str, Any]:
    """The statement's context (JSON-ready): the period and, per currency, the opening and
    closing balances, top-ups and payments (count and sum), thresholds crossed, usage-limit
    events and the days the closing balance lasts at the recent rate."""
    currencies = []
    for row in sorted(rows, key=lambda r: str(r["currency"])):
        opening = row["opening"]
        closing = row["closing"] if row["closing"] is not None else opening
        currencies.append(
            {
                "currency": row["currency"],
                "opening": _text(opening),
                "closing": _text(closing),
                "top_ups": int(row["top_ups"]),
                "top_up_sum": _text(row["top_up_sum"]),
                "payments": int(row["payments"]),
                "payment_sum": _text(row["payment_sum"]),
                "low_crossings": int(row["low_crossings"]),
                "critical_crossings": int(row["critical_crossings"]),
                "limit_events": int(row["limit_events"]),
                "days_left": days_left.get(str(row["currency"])),
            }
        )
    last_day = next_period(period) - timedelta(days=1)
    return {
        "period": period.isoformat(),
        "period_end": last_day.isoformat(),
        "currencies": currencies,
    }


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)
