"""Low credit end to end (SPEC §5): one notice per crossing below `low` and below `critical`,
none again until a top-up lifts the balance above threshold + hysteresis; concurrent and
late balance updates cannot notify twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from notifyd.settings import Settings
from tests.conftest import BILLING_SECRET, running_daemon
from tests.integration.catalogue_support import (
    RawSink,
    check_mail,
    mail_number,
    post_ok,
    sending_settings,
)
from tests.integration.queue_support import kinds_and_states

ACCOUNT = "acc-credit"
THRESHOLDS = {"low": "5.00", "critical": "1.00", "hysteresis": "1.00"}


def settings_for(tmp_path: Path, database_url: str, sink: RawSink) -> Settings:
    return sending_settings(tmp_path, database_url, sink, thresholds__RON=THRESHOLDS)


def balance(amount: str, at: datetime) -> dict[str, object]:
    """A balance update whose envelope `timestamp` (the event time) is `at`."""
    return sample_event("billing.balance_updated", ACCOUNT, now=at, balance=amount, currency="RON")


async def kinds(db: asyncpg.Connection) -> list[str]:
    rows = await db.fetch("SELECT kind FROM notices ORDER BY created_at")
    return [row["kind"] for row in rows]


async def test_crossings_notify_once_each_and_rearm_only_above_the_hysteresis(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    start = datetime.now(UTC) - timedelta(minutes=10)
    sequence = ["10.00", "4.00", "3.00", "0.50", "0.40", "8.00", "4.00"]
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        for step, amount in enumerate(sequence):
            await post_ok(daemon, balance(amount, start + timedelta(seconds=step)))
        await sink.wait_for(4)
        # Each balance's notice was committed before its 202: a wrong fifth email would be
        # a fifth notice, sent before this returns.
        states = await kinds_and_states(db)
    assert states == [
        ("account.created", "sent"),
        ("credit.low", "sent"),
        ("credit.critical", "sent"),
        ("credit.low", "sent"),
    ]
    mails = [check_mail(raw) for raw in sink.raws[1:]]
    assert len(mails) == 3
    # Deliveries run in parallel: the emails may arrive in any order.
    critical = [mail for mail in mails if "insuficientă" in mail.subject]
    low = [mail for mail in mails if mail not in critical]
    assert len(critical) == 1
    assert "insuficientă pentru continuarea serviciului (sold 0,50 RON)" in critical[0].subject
    assert "Prag minim: 1,00 RON" in critical[0].text
    assert [mail.subject for mail in low] == [
        "Credit scăzut: soldul contului dvs. este 4,00 RON"
    ] * 2
    for mail in low:
        assert "Prag de avertizare: 5,00 RON" in mail.text
    state = await db.fetchrow(
        "SELECT level, balance FROM credit_states WHERE account_id = $1", ACCOUNT
    )
    assert state is not None
    assert (state["level"], str(state["balance"])) == ("low", "4.00")


async def test_a_top_up_within_the_hysteresis_does_not_rearm(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    start = datetime.now(UTC) - timedelta(minutes=10)
    # 5.50 is above low (5) but not above low + hysteresis (6): 4 again says nothing.
    sequence = ["10.00", "4.00", "5.50", "4.00", "6.50", "4.50"]
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        for step, amount in enumerate(sequence):
            await post_ok(daemon, balance(amount, start + timedelta(seconds=step)))
        await sink.wait_for(3)
        states = await kinds_and_states(db)
    assert states == [("account.created", "sent"), ("credit.low", "sent"), ("credit.low", "sent")]
    assert len(sink.messages) == 3


async def test_concurrent_updates_below_low_give_one_notice(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    start = datetime.now(UTC) - timedelta(minutes=10)
    updates = [
        balance(f"{4 - step * 0.1:.2f}", start + timedelta(seconds=step)) for step in range(20)
    ]
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await mail_number(sink, 1)
        answers = await asyncio.gather(
            *(daemon.post("billing", update, BILLING_SECRET) for update in updates)
        )
        await sink.wait_for(2)
        states = await kinds_and_states(db)
    assert [status for status, _ in answers] == [202] * 20
    assert (
        await db.fetchval("SELECT count(*) FROM events WHERE type = $1", updates[0]["type"]) == 20
    )
    assert states == [("account.created", "sent"), ("credit.low", "sent")]
    assert len(sink.messages) == 2


async def test_an_update_older_than_the_last_applied_one_is_ignored(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    start = datetime.now(UTC) - timedelta(minutes=10)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        await post_ok(daemon, balance("3.00", start + timedelta(seconds=10)))
        # Sent before the one above but delivered after it: says nothing about now.
        await post_ok(daemon, balance("0.50", start + timedelta(seconds=5)))
        assert await kinds(db) == ["account.created", "credit.low"]
        stale = await db.fetchrow(
            "SELECT level, balance, as_of FROM credit_states WHERE account_id = $1", ACCOUNT
        )
        # The same balance with a newer time does cross below critical.
        await post_ok(daemon, balance("0.50", start + timedelta(seconds=20)))
        await sink.wait_for(3)
        states = await kinds_and_states(db)
    assert stale is not None
    assert (stale["level"], str(stale["balance"])) == ("low", "3.00")
    assert stale["as_of"] == start + timedelta(seconds=10)
    assert states == [
        ("account.created", "sent"),
        ("credit.low", "sent"),
        ("credit.critical", "sent"),
    ]
    assert len(sink.messages) == 3
