"""The monthly credit statement (category `statement`, kind `billing.statement`) on a real
database and a real SMTP sink, with a fake clock for the statement job: a month boundary
and two hosts (exactly one statement), the numbers from a known sequence of billing
events, the next month opening where the last closed, a statement due while no job ran
sent once when one runs, and none for a subscriber who did not turn it on.

The periods are months ahead of the real clock, so that the daemons' own job (real clock,
every minute) never finds them due: only the test's fake `now` does."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from notifyd.catalogue.samples import sample_event
from notifyd.jobs import queue_statements
from notifyd.rules.statements import next_period, send_point
from notifyd.settings import Settings
from tests.conftest import BILLING_SECRET, WAIT, Running, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.catalogue_support import FAST_DELIVERY, NO_QUIET_HOURS
from tests.integration.daemon_support import submit, subscribe, welcome

ZONE = "Europe/Bucharest"
SEND_AT = time(8, 0)
DAY = 2
THRESHOLDS = {"low": "5.00", "critical": "1.00", "hysteresis": "1.00"}


def settings_for(tmp_path: Path, database_url: str, sink: SmtpSink) -> Settings:
    config = admin_config(tmp_path, database_url, sink.port)
    config["delivery"].update(FAST_DELIVERY)
    config["defaults"].update(NO_QUIET_HOURS)
    config["thresholds.RON"] = THRESHOLDS
    config["statements"] = {"day_of_month": DAY, "time": "08:00"}
    return load_config(tmp_path, config)


def months_ahead(count: int) -> date:
    period = datetime.now(UTC).date().replace(day=1)
    for _ in range(count):
        period = next_period(period)
    return period


def at(period: date, day: int, hour: int = 12) -> datetime:
    return datetime(period.year, period.month, day, hour, tzinfo=UTC)


async def billing(daemon: Running, kind: str, account: str, moment: datetime, **data: Any) -> None:
    event = sample_event(kind, account, now=moment, currency="RON", **data)
    status, body = await daemon.post("billing", event, BILLING_SECRET)
    assert status == 202, body


async def month_of_events(daemon: Running, account: str, period: date) -> None:
    """A known month: 20.00 at first, 50.00 topped up, an invoice paid, down past low and
    critical with the daily limit exceeded between, 10.00 topped up at the end."""
    await billing(daemon, "billing.balance_updated", account, at(period, 10), balance="20.00")
    await billing(
        daemon,
        "billing.credit_added",
        account,
        at(period, 11),
        amount="50.00",
        new_balance="70.00",
    )
    await billing(daemon, "billing.payment_confirmed", account, at(period, 12), amount="119.00")
    await billing(daemon, "billing.balance_updated", account, at(period, 14), balance="4.00")
    await billing(
        daemon,
        "usage.daily_limit_exceeded",
        account,
        at(period, 15),
        limit="10.00",
        spent="12.00",
        date=at(period, 15).date().isoformat(),
    )
    await billing(daemon, "billing.balance_updated", account, at(period, 18), balance="0.50")
    await billing(
        daemon,
        "billing.credit_added",
        account,
        at(period, 20),
        amount="10.00",
        new_balance="10.50",
    )


async def run_job(daemon: Running, now: datetime) -> int:
    """The statement job at `now` on this daemon's pool; waits (bounded) while another
    host's run holds the lock."""
    database = daemon.daemon.database
    assert database is not None
    async with asyncio.timeout(WAIT):
        while True:
            queued = await queue_statements(
                database.pool, daemon.daemon.settings, now, lambda: None
            )
            if queued is not None:
                return queued
            await asyncio.sleep(0.05)


async def statements_sent(db: asyncpg.Connection, account: str, count: int) -> list[Any]:
    async with asyncio.timeout(WAIT):
        while True:
            rows = await db.fetch(
                "SELECT state, context, dedupe_key FROM notices"
                " WHERE account_id = $1 AND kind = 'billing.statement' ORDER BY created_at",
                account,
            )
            if len(rows) >= count and all(row["state"] == "sent" for row in rows):
                return rows
            await asyncio.sleep(0.05)


def subjects(sink: SmtpSink, word: str) -> list[str]:
    return [str(m["Subject"]) for m in sink.messages if word in str(m["Subject"])]


async def test_one_statement_per_month_across_a_month_boundary_and_two_hosts(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    first = months_ahead(2)
    second = next_period(first)
    # Written out, not asked of rules/statements.py: 08:00 on the 2nd, Bucharest time.
    due = datetime(second.year, second.month, DAY, 8, 0, tzinfo=ZoneInfo(ZONE))
    async with running_daemon(settings) as host_a, running_daemon(settings) as host_b:
        await subscribe(host_a, "acc-on", {"modes": {"statement": "immediate"}}, language="en")
        await subscribe(host_a, "acc-off", {}, language="en")  # never turned it on
        for account in ("acc-on", "acc-off"):
            await month_of_events(host_a, account, first)
            # The next month's first balance, posted before the first month's statement
            # goes: 23:30 UTC on the last day is 01:30 in Bucharest, the second month.
            boundary = at(second, 1, 0) - timedelta(minutes=30)
            await billing(host_b, "billing.balance_updated", account, boundary, balance="9.00")

        # A minute before 08:00 on the day, Bucharest time: nothing is due on either host.
        early = await asyncio.gather(
            run_job(host_a, due - timedelta(minutes=1)), run_job(host_b, due - timedelta(minutes=1))
        )
        assert list(early) == [0, 0]
        # Just after: both hosts look at once, one statement is queued.
        late = await asyncio.gather(
            run_job(host_a, due + timedelta(seconds=30)),
            run_job(host_b, due + timedelta(seconds=30)),
        )
        assert sorted(late) == [0, 1]
        (row,) = await statements_sent(db, "acc-on", 1)
        # And again later (another minute's run, a restart): nothing more.
        assert await run_job(host_b, due + timedelta(hours=3)) == 0
        await smtp_sink.wait_for(len(smtp_sink.messages))

    assert row["dedupe_key"] == f"statement:{first:%Y-%m}"
    context = json_of(row["context"])
    assert context["period"] == first.isoformat()
    assert context["period_end"] == (second - timedelta(days=1)).isoformat()
    (ron,) = context["currencies"]
    assert ron == {
        "currency": "RON",
        "opening": "20.00",
        "closing": "10.50",
        "top_ups": 2,
        "top_up_sum": "60.00",
        "payments": 1,
        "payment_sum": "119.00",
        "low_crossings": 1,
        "critical_crossings": 1,
        "limit_events": 1,
        "days_left": None,  # no balances in the week before the fake clock
    }
    mails = subjects(smtp_sink, "monthly credit statement")
    assert len(mails) == 1
    (mail,) = [m for m in smtp_sink.messages if "monthly credit statement" in str(m["Subject"])]
    body = text_of(mail)
    assert "Opening balance: RON 20.00" in body
    assert "Closing balance: RON 10.50" in body
    assert "Top-ups: 2, RON 60.00 in all" in body
    assert "Payments confirmed: 1, RON 119.00 in all" in body
    assert "Low-credit warnings: 1; balance insufficient to continue service: 1" in body
    assert "Daily call-spend limit exceeded: 1 time" in body
    # Off by default: no running record, no statement for the other subscriber.
    assert (
        await db.fetchval("SELECT count(*) FROM credit_statements WHERE account_id = 'acc-off'")
        == 0
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM notices"
            " WHERE account_id = 'acc-off' AND kind = 'billing.statement'"
        )
        == 0
    )


async def test_the_next_month_opens_where_the_last_closed_and_a_missed_one_is_caught_up(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    first = months_ahead(2)
    second, third = next_period(first), next_period(next_period(first))
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-on", {"modes": {"statement": "daily"}}, language="ro")
        await month_of_events(daemon, "acc-on", first)
        await billing(daemon, "billing.balance_updated", "acc-on", at(second, 3), balance="7.25")
        assert await run_job(daemon, send_point(first, ZONE, DAY, SEND_AT)) == 1
        # No job ran at the second month's time (the daemons were down): the first run
        # after, days later, sends it, once.
        missed = send_point(second, ZONE, DAY, SEND_AT) + timedelta(days=9)
        assert await run_job(daemon, missed) == 1
        assert await run_job(daemon, missed + timedelta(minutes=1)) == 0
        # A quiet month still has its statement: it opens and closes at the last balance.
        assert await run_job(daemon, send_point(third, ZONE, DAY, SEND_AT)) == 1
        rows = await statements_sent(db, "acc-on", 3)
    months = [json_of(row["context"])["currencies"][0] for row in rows]
    assert [(m["opening"], m["closing"]) for m in months] == [
        ("20.00", "10.50"),
        ("10.50", "7.25"),
        ("7.25", "7.25"),
    ]
    assert [m["top_ups"] for m in months] == [2, 0, 0]
    assert len(subjects(smtp_sink, "Situația lunară a creditului")) == 3


async def test_a_statement_turned_off_before_its_day_is_not_sent(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    first = months_ahead(2)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-on", {"modes": {"statement": "immediate"}}, language="en")
        await month_of_events(daemon, "acc-on", first)
        await subscribe(daemon, "acc-on", {"modes": {"statement": "off"}}, language="en")
        assert await run_job(daemon, send_point(first, ZONE, DAY, SEND_AT)) == 0
        assert (
            await db.fetchval("SELECT count(*) FROM notices WHERE kind = 'billing.statement'") == 0
        )
        # Passed over, not left for every later run to look at again.
        assert await db.fetchval("SELECT bool_and(queued_at IS NOT NULL) FROM credit_statements")


async def test_a_restricted_accounts_statement_waits_for_the_restriction_to_be_lifted(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    first = months_ahead(2)
    due = send_point(first, ZONE, DAY, SEND_AT)
    restriction = "/v1/admin/subscribers/acc-on/restriction"
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-on", {"modes": {"statement": "immediate"}}, language="en")
        await month_of_events(daemon, "acc-on", first)
        assert (await call(daemon, "PUT", restriction))[0] == 200
        assert await run_job(daemon, due) == 0
        assert (
            await db.fetchval("SELECT count(*) FROM notices WHERE kind = 'billing.statement'") == 0
        )
        assert (await call(daemon, "DELETE", restriction))[0] == 200
        assert await run_job(daemon, due + timedelta(days=3)) == 1
        await statements_sent(db, "acc-on", 1)


async def test_the_preference_page_offers_the_statement_off_and_turns_it_on(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with daemon.session.get(link) as page:
            form = await page.text()
        # Named with what it sends, and off until the subscriber turns it on.
        select = form.split('name="mode.statement"', 1)[1].split("</select>", 1)[0]
        assert '<option value="off" selected>' in select
        assert "Situația lunară a creditului" in form
        assert "soldul de la început și de la sfârșit" in form
        status, _ = await submit(daemon, link, {"mode.statement": "immediate"})
        assert status == 200
        await billing(
            daemon, "billing.balance_updated", "acc-1", at(months_ahead(2), 5), balance="9.00"
        )
    saved = await db.fetchval("SELECT preferences FROM subscribers WHERE account_id = 'acc-1'")
    assert json_of(saved)["modes"] == {"statement": "immediate"}
    # Chosen: its billing events now add to the month's record.
    assert await db.fetchval("SELECT closing FROM credit_statements") == Decimal("9.00")


def json_of(value: Any) -> dict[str, Any]:
    import json

    parsed = json.loads(value) if isinstance(value, str) else value
    assert isinstance(parsed, dict)
    return parsed


def text_of(message: Any) -> str:
    body = message.get_body(preferencelist=("plain",))
    # Amounts are written with a no-break space between currency and number.
    return str(body.get_content()).replace("\xa0", " ").replace("\r\n", "\n")
