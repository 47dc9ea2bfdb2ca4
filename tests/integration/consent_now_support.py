"""Helpers of test_consent_now, test_address_state_now and test_restriction: a daemon that
sends to a real SMTP sink with the admin API open, notices put in each waiting state by the
rules themselves (quiet hours, a digest, a burst), a marketing withdrawal made each way a
subscriber or an admin makes one, and the clock moved past what they wait for."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from notifyd.catalogue.samples import SAMPLE_BROADCASTS
from notifyd.jobs import flush_digests
from notifyd.settings import Settings
from tests.conftest import WAIT, Running, SmtpSink, load_config
from tests.integration.admin_support import admin_config, call, post_import
from tests.integration.catalogue_support import FAST_DELIVERY
from tests.integration.daemon_support import post

BUCHAREST = ZoneInfo("Europe/Bucharest")


def settings_for(tmp_path: Path, database_url: str, sink: SmtpSink, **sections: Any) -> Settings:
    """Admin tokens, quick retries, bursts gathered for two minutes; `sections` added."""
    return load_config(tmp_path, config_for(tmp_path, database_url, sink, **sections))


def config_for(
    tmp_path: Path, database_url: str, sink: SmtpSink, **sections: Any
) -> dict[str, dict[str, Any]]:
    """The sections of settings_for's file, for a test to change and reload."""
    config = admin_config(tmp_path, database_url, sink.port)
    config["delivery"].update(FAST_DELIVERY)
    config["calls"] = {"burst_window_seconds": 120}
    for section, values in sections.items():
        config.setdefault(section.replace("__", "."), {}).update(values)
    return config


def quiet_now() -> str:
    """Quiet hours (Bucharest) that hold what is queued now for about two hours."""
    local = datetime.now(UTC).astimezone(BUCHAREST)
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}"


async def preferences(daemon: Running, account: str, **changes: Any) -> None:
    path = f"/v1/admin/subscribers/{account}/preferences"
    status, body = await call(daemon, "PATCH", path, json=changes)
    assert status == 200, body


async def broadcast(daemon: Running, kind: str) -> None:
    """A broadcast of `kind`, fanned out (its notices queued) before this returns."""
    status, created = await call(
        daemon, "POST", "/v1/admin/broadcasts", json={"kind": kind, **SAMPLE_BROADCASTS[kind]}
    )
    assert status == 202, created
    async with asyncio.timeout(WAIT):
        while (await call(daemon, "GET", f"/v1/admin/broadcasts/{created['id']}"))[1][
            "state"
        ] != "done":
            await asyncio.sleep(0.05)


# The ways a marketing withdrawal is made, and the source each records.
WITHDRAWALS = {
    "one-click unsubscribe": "unsubscribe-link",
    "admin withdrawal": "admin",
    "import": "import",
}


async def withdraw(
    daemon: Running, how: str, account: str = "acc-1", address: str = "ana@client.example"
) -> None:
    """The account withdraws marketing consent `how` (a key of WITHDRAWALS)."""
    if how == "one-click unsubscribe":
        links = daemon.daemon.links
        assert links is not None
        link = links.unsubscribe_url(account, address, issued=datetime.now(UTC))
        async with daemon.session.post(link, data={"List-Unsubscribe": "One-Click"}) as done:
            assert done.status == 200
    elif how == "admin withdrawal":
        withdrawn = {"marketing": False, "source": "admin", "wording_version": "v1"}
        path = f"/v1/admin/subscribers/{account}/consent"
        assert (await call(daemon, "POST", path, json=withdrawn))[0] == 201
    else:
        rows = f"account_id,email,marketing\n{account},{address},false\n"
        assert (await post_import(daemon, rows.encode(), "text/csv"))[0] == 200


async def missed_calls_waiting(daemon: Running, account: str) -> None:
    """Missed calls of `account` in every waiting state the rules give: one queued until
    quiet hours end, one held for the hourly digest, two held for a burst's follow-up
    (the one waiting for the quiet hours counts as the burst's first). Leaves the account
    with no quiet hours and calls immediate."""
    await preferences(daemon, account, quiet_hours=quiet_now())
    await post(daemon, "call.missed", account, call_id="call-quiet")
    await preferences(daemon, account, modes={"calls": "hourly"})
    await post(daemon, "call.missed", account, call_id="call-digest")
    await preferences(daemon, account, quiet_hours="", modes={"calls": "immediate"})
    await post(daemon, "call.missed", account, call_id="call-burst-1")
    await post(daemon, "call.missed", account, call_id="call-burst-2")


async def notices(db: asyncpg.Connection, account: str) -> dict[str, tuple[str, str | None]]:
    """Each notice of the account by its call (or its kind): (state, last_error)."""
    rows = await db.fetch(
        "SELECT n.kind, n.state, n.last_error, e.data ->> 'call_id' AS call_id"
        " FROM notices AS n LEFT JOIN events AS e ON e.id = n.event_id"
        " WHERE n.account_id = $1 AND n.kind <> 'account.created'",
        account,
    )
    return {row["call_id"] or row["kind"]: (row["state"], row["last_error"]) for row in rows}


async def move_clock_past_waits(daemon: Running, db: asyncpg.Connection) -> None:
    """As if hours had passed: what waits for quiet hours or a burst is due now, and the
    digests of the next day are gathered (the digest job at that time)."""
    await db.execute("UPDATE notices SET due_at = now() WHERE state IN ('queued', 'held')")
    database, dispatcher = daemon.daemon.database, daemon.daemon.dispatcher
    assert database is not None
    assert dispatcher is not None
    later = datetime.now(UTC) + timedelta(days=1)
    async with asyncio.timeout(WAIT):
        # None while the daemon's own run of the job holds its lock.
        while await flush_digests(database.pool, later, "voip.example", dispatcher.wake) is None:
            await asyncio.sleep(0.05)
    dispatcher.wake()


async def settled(sink: SmtpSink, count: int, db: asyncpg.Connection) -> list[str]:
    """The subjects of the emails, once `count` have come, nothing is left to send and a
    little longer has passed (no more come)."""
    await sink.wait_for(count)
    async with asyncio.timeout(WAIT):
        while await db.fetchval(
            "SELECT count(*) FROM notices WHERE state IN ('queued', 'sending')"
        ):
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    return [str(message["Subject"]) for message in sink.messages]
