"""Hourly and daily digests end to end: signed webhooks in, held notices in PostgreSQL, the
digest job gathering them, the worker sending one email per period to a real SMTP server;
and several addresses per subscriber."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from notifyd.catalogue.samples import sample_event
from notifyd.jobs import flush_digests
from tests.conftest import (
    PBX_SECRET,
    WAIT,
    DaemonProcess,
    Running,
    SmtpSink,
    running_daemon,
    spawn_daemon,
    write_config,
)
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import post, settings_for, subscribe
from tests.integration.queue_support import settled_notices

BUCHAREST = ZoneInfo("Europe/Bucharest")
FREQUENT = "+40721555123"


# -- helpers -----------------------------------------------------------------------------------


async def flush(daemon: Running, now: datetime) -> tuple[int, int]:
    """The digest job at `now`; waits (bounded) while the daemon's own run holds the lock."""
    database, dispatcher = daemon.daemon.database, daemon.daemon.dispatcher
    assert database is not None
    assert dispatcher is not None
    async with asyncio.timeout(WAIT):
        while True:
            result = await flush_digests(
                database.pool, now, daemon.daemon.settings.message_domain, dispatcher.wake
            )
            if result is not None:
                return result
            await asyncio.sleep(0.05)


async def settle(sink: SmtpSink, db: asyncpg.Connection, count: int) -> list[EmailMessage]:
    """Wait for `count` emails, then for every notice to be settled (held ones wait for
    their digest): no more emails come but a stray one the test counts after the stop."""
    await sink.wait_for(count)
    await settled_notices(db)
    return list(sink.messages)


def text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def items(message: EmailMessage) -> list[str]:
    """The digest's one line per notice."""
    return [line[2:] for line in text(message).splitlines() if line.startswith("- ")]


def recipient(sink: SmtpSink, index: int) -> str:
    rcpts = sink.envelopes[index][1]
    assert len(rcpts) == 1
    return rcpts[0]


async def states(db: asyncpg.Connection, account: str) -> Counter[tuple[str, str]]:
    rows = await db.fetch("SELECT kind, state FROM notices WHERE account_id = $1", account)
    return Counter((row["kind"], row["state"]) for row in rows)


async def wait_state(db: asyncpg.Connection, query: str, expected: object) -> None:
    async with asyncio.timeout(WAIT):
        while await db.fetchval(query) != expected:
            await asyncio.sleep(0.05)


async def clear_of(minute: int = 0, margin: float = 15.0) -> None:
    """Sleep past the next local HH:`minute` if it is less than `margin` seconds away, so that
    the daemon's own digest job (real clock, every 20 s) cannot take a test's held notices
    before the test flushes them with its later `now`. Bucharest's hours start on UTC hours."""
    now = datetime.now(UTC)
    boundary = now.replace(minute=minute, second=0, microsecond=0)
    if boundary <= now:
        boundary += timedelta(hours=1)
    if (boundary - now).total_seconds() < margin:
        await asyncio.sleep((boundary - now).total_seconds() + 1.0)


# -- 4. hourly digest of missed calls ----------------------------------------------------------


async def test_hourly_digest_gathers_a_subscribers_missed_calls_into_one_email(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink.port)
    start = datetime.now(UTC) - timedelta(minutes=30)
    # In the order the calls happened; three from one number.
    callers = [FREQUENT, "+40721555001", FREQUENT, "+40721555002", FREQUENT]
    calls = [
        sample_event(
            "call.missed",
            "acc-1",
            now=start + timedelta(minutes=5 * n),
            call_id=f"call-{n}",
            caller_number=number,
        )
        for n, number in enumerate(callers)
    ]
    async with running_daemon(settings) as daemon:
        await subscribe(
            daemon, "acc-1", {"modes": {"calls": "hourly"}}, language="en", name="Ana Popescu"
        )
        await smtp_sink.wait_for(1)  # the welcome
        await clear_of()
        before_post = datetime.now(UTC)
        for event in reversed(calls):  # posted out of order: the digest tells event order
            status, body = await daemon.post("pbx", event, PBX_SECRET)
            assert status == 202, body
        # Nothing is left to send: the calls are held (checked below) for their digest.
        await settled_notices(db)
        before = len(smtp_sink.messages)
        held = await db.fetch(
            "SELECT due_at, digest FROM notices WHERE kind = 'call.missed' AND state = 'held'"
        )

        first = await flush(daemon, datetime.now(UTC) + timedelta(hours=2))
        messages = await settle(smtp_sink, db, 2)
        second = await flush(daemon, datetime.now(UTC) + timedelta(hours=2))
        await settled_notices(db)  # a second digest would have been sent by now
        await wait_state(db, "SELECT state FROM notices WHERE kind = 'digest'", "sent")
        listed = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/notices?limit=50")

    assert before == 1  # only the welcome: the calls wait for their digest
    assert len(held) == 5
    assert {row["digest"] for row in held} == {"hourly"}
    (due,) = {row["due_at"] for row in held}
    assert (due.astimezone(BUCHAREST).minute, due.second) == (0, 0)
    assert timedelta(0) < due - before_post <= timedelta(hours=1)

    assert first == (1, 5)
    assert second == (0, 0)
    assert len(smtp_sink.messages) == 2  # the welcome and one digest, nothing twice
    digest = messages[1]
    assert recipient(smtp_sink, 1) == "subscriber@example.com"
    assert digest["Subject"] == "Hourly digest: 5 missed calls"
    content = text(digest)
    assert "Your hourly digest: 5 missed calls, 3 from +40 721 555 123." in content
    lines = items(digest)
    assert len(lines) == 5
    # One line per call, in the order the calls happened.
    assert [line.split(" from ")[1][:15] for line in lines] == [
        "+40 721 555 " + number[-3:] for number in callers
    ]
    assert all("missed call from" in line for line in lines)
    html_part = digest.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    html = str(html_part.get_content())
    assert "3 from <strong>+40 721 555 123</strong>" in html
    assert html.count("<li ") == 5
    assert digest["List-Unsubscribe"]

    assert listed[0] == 200
    notices = listed[1]["notices"]
    missed = [n for n in notices if n["kind"] == "call.missed"]
    assert [n["state"] for n in missed] == ["digested"] * 5
    assert all(any("hourly digest" in reason for reason in n["reasons"]) for n in missed)
    (digest_notice,) = [n for n in notices if n["kind"] == "digest"]
    assert digest_notice["state"] == "sent"
    assert any("hourly digest of 5 calls notices" in r for r in digest_notice["reasons"])


# -- 5. daily digest, one per address ----------------------------------------------------------


async def test_daily_digest_goes_at_the_subscribers_time_once_per_address(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink.port)
    offices = ["fax1@client.example", "fax2@client.example"]
    start = datetime.now(UTC) - timedelta(minutes=10)
    async with running_daemon(settings) as daemon:
        await subscribe(
            daemon,
            "acc-1",
            {"modes": {"fax": "daily"}, "digest_time": "07:30", "addresses": {"fax": offices}},
        )
        await smtp_sink.wait_for(1)
        await clear_of(minute=30)
        before_post = datetime.now(UTC)
        for n, kind in enumerate(["fax.sent", "fax.sent", "fax.failed"]):
            event = sample_event(kind, "acc-1", now=start + timedelta(minutes=n))
            status, body = await daemon.post("pbx", event, PBX_SECRET)
            assert status == 202, body
        rows = await db.fetch(
            "SELECT recipient, due_at, digest FROM notices WHERE state = 'held' ORDER BY recipient"
        )
        (due,) = {row["due_at"] for row in rows}

        early = await flush(daemon, due - timedelta(seconds=1))
        await settled_notices(db)  # an early digest would have been sent by now
        after_early = len(smtp_sink.messages)
        on_time = await flush(daemon, due)
        messages = await settle(smtp_sink, db, 3)

    assert [row["recipient"] for row in rows] == [offices[0]] * 3 + [offices[1]] * 3
    assert {row["digest"] for row in rows} == {"daily"}
    # The next 07:30 on the subscriber's clock (Bucharest), within a day.
    assert f"{due.astimezone(BUCHAREST):%H:%M:%S}" == "07:30:00"
    assert timedelta(0) < due - before_post <= timedelta(hours=25)

    assert early == (0, 0)
    assert after_early == 1
    assert on_time == (2, 6)  # one digest per address, not one for both
    assert len(smtp_sink.messages) == 3
    assert sorted(recipient(smtp_sink, i) for i in (1, 2)) == offices
    for digest in messages[1:]:
        assert digest["Subject"] == "Rezumat zilnic: 2 faxuri trimise, un fax netrimis"
        assert "Rezumatul zilnic al notificărilor dvs.: 2 faxuri trimise" in text(digest)
        assert len(items(digest)) == 3
    assert messages[1]["Message-ID"] != messages[2]["Message-ID"]


# -- 6. a voicemail absorbs a held missed call -------------------------------------------------


async def test_a_voicemail_absorbs_the_held_missed_call_of_the_same_call(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink.port)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {"modes": {"calls": "hourly"}})
        await smtp_sink.wait_for(1)
        await clear_of()
        await post(
            daemon,
            "call.missed",
            "acc-1",
            call_id="call-vm",
            caller_number="+40721555777",
            to_voicemail=True,
        )
        await post(
            daemon, "call.missed", "acc-1", call_id="call-plain", caller_number="+40721555888"
        )
        held = await states(db, "acc-1")
        await post(
            daemon, "voicemail.received", "acc-1", call_id="call-vm", caller_number="+40721555777"
        )
        voicemail = (await smtp_sink.wait_for(2))[1]
        merged = await states(db, "acc-1")

        flushed = await flush(daemon, datetime.now(UTC) + timedelta(hours=2))
        messages = await settle(smtp_sink, db, 3)

    assert held[("call.missed", "held")] == 2
    assert merged[("call.missed", "merged")] == 1
    assert merged[("call.missed", "held")] == 1
    assert "Apel nepreluat și mesaj vocal" in str(voicemail["Subject"])
    assert flushed == (1, 1)
    assert len(smtp_sink.messages) == 3
    digest = messages[2]
    assert digest["Subject"] == "Rezumat orar: un apel nepreluat"
    (line,) = items(digest)
    assert "+40 721 555 888" in line
    assert "+40 721 555 777" not in text(digest)


# -- 7. held notices survive a restart ---------------------------------------------------------


async def test_held_notices_survive_a_restart(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink.port)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {"modes": {"calls": "hourly"}}, language="en")
        await smtp_sink.wait_for(1)
        await clear_of()
        for n in range(2):
            await post(daemon, "call.missed", "acc-1", call_id=f"call-{n}")
    held_while_down = await states(db, "acc-1")

    async with running_daemon(settings) as again:
        flushed = await flush(again, datetime.now(UTC) + timedelta(hours=2))
        messages = await settle(smtp_sink, db, 2)

    assert held_while_down[("call.missed", "held")] == 2
    assert flushed == (1, 2)
    assert len(smtp_sink.messages) == 2
    assert messages[1]["Subject"] == "Hourly digest: 2 missed calls"
    assert len(items(messages[1])) == 2


# -- 8. two daemon processes, one database -----------------------------------------------------


async def test_two_daemons_on_one_database_send_each_digest_once(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    accounts = [f"acc-{n}" for n in range(4)]
    # Held notices for several subscribers, set up by one daemon (its emails to .eml files).
    setup = tmp_path / "setup"
    setup.mkdir()
    await clear_of(margin=30.0)
    async with running_daemon(settings_for(setup, database_url, None)) as daemon:
        for n, account in enumerate(accounts):
            await subscribe(
                daemon, account, {"modes": {"calls": "hourly"}}, email=f"sub{n}@client.example"
            )
            for leg in range(3):
                await post(daemon, "call.missed", account, call_id=f"{account}-call-{leg}")
    held = await db.fetchval("SELECT count(*) FROM notices WHERE state = 'held'")
    # Time passes: the digests are due.
    await db.execute("UPDATE notices SET due_at = now() - interval '1 second' WHERE state = 'held'")

    configs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        configs.append(
            write_config(
                folder / "notifyd.toml", admin_config(folder, database_url, smtp_sink.port)
            )
        )
    # While the test holds the due rows, a digest job that has started cannot finish: the
    # two daemons, started together, both run the job at start inside that window.
    watcher = await asyncio.wait_for(asyncpg.connect(database_url), WAIT)
    hold = db.transaction()
    await hold.start()
    daemons: list[DaemonProcess] = []
    try:
        await db.execute("SELECT id FROM notices WHERE state = 'held' FOR UPDATE")
        started = await asyncio.gather(
            *(spawn_daemon(path) for path in configs), return_exceptions=True
        )
        daemons = [process for process in started if isinstance(process, DaemonProcess)]
        for failure in started:
            if isinstance(failure, BaseException):
                raise failure
        await wait_state(
            watcher,
            "SELECT count(*) > 0 FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'",
            True,
        )
        # What this tests: the other daemon's job, started with it, runs while the first
        # waits for the rows; it leaves no trace when it finds the job's lock taken, so
        # this gives it the time to.
        await asyncio.sleep(0.5)
        await hold.rollback()

        # Nothing left to send: the daemons' stops below finish any send in progress.
        messages = await settle(smtp_sink, db, len(accounts))
        digests = await db.fetchval("SELECT count(*) FROM notices WHERE kind = 'digest'")
        gathered = await db.fetchval("SELECT count(*) FROM notices WHERE state = 'digested'")
    finally:
        if db.is_in_transaction():
            await hold.rollback()
        await watcher.close()
        for process in daemons:
            process.process.terminate()
        codes = await asyncio.gather(*(process.wait_exit() for process in daemons))

    logged = [line for process in daemons for line in process.events("digests queued")]
    assert held == 12
    assert digests == len(accounts)
    assert gathered == 12
    assert sum(line["digests"] for line in logged) == len(accounts)
    assert len(smtp_sink.messages) == len(accounts)  # exactly one each, none twice
    assert sorted(rcpts[0] for _, rcpts in smtp_sink.envelopes) == [
        f"sub{n}@client.example" for n in range(len(accounts))
    ]
    assert {str(message["Subject"]) for message in messages} == {
        "Rezumat orar: 3 apeluri nepreluate"
    }
    assert len({message["Message-ID"] for message in messages}) == len(accounts)
    assert codes == [0, 0]


# -- unsubscribing with notices held ----------------------------------------------------------


async def test_unsubscribing_from_a_digest_stops_the_notices_already_held_for_the_next(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """The digest's one-click unsubscribe answers "You will receive no more notices: calls";
    a call held for the next digest must not arrive after that."""
    settings = settings_for(tmp_path, database_url, smtp_sink.port)
    later = datetime.now(UTC) + timedelta(hours=2)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {"modes": {"calls": "hourly"}}, language="en")
        await smtp_sink.wait_for(1)
        await clear_of()
        await post(daemon, "call.missed", "acc-1", call_id="call-1")
        assert await flush(daemon, later) == (1, 1)
        first_digest = (await smtp_sink.wait_for(2))[1]
        # Another call arrives and waits for the next digest; then the subscriber clicks.
        await post(daemon, "call.missed", "acc-1", call_id="call-2")
        link = first_digest["List-Unsubscribe"].strip("<>")
        async with daemon.session.post(link, data={"List-Unsubscribe": "One-Click"}) as response:
            status, page = response.status, await response.text()
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        second = await flush(daemon, later)
        await settled_notices(db)  # a digest of the held call would have been sent by now
        left = await states(db, "acc-1")

    assert status == 200
    assert "no more notices" in page or "Nu veți mai primi notificări" in page
    assert after[1]["effective"]["modes"]["calls"] == "off"
    assert len(smtp_sink.messages) == 2, [str(m["Subject"]) for m in smtp_sink.messages]
    assert second == (0, 0)
    assert left[("call.missed", "held")] == 0


# -- 9. several addresses ----------------------------------------------------------------------


async def test_extra_addresses_get_every_immediate_notice_once_per_call(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink.port)
    async with running_daemon(settings) as daemon:
        await subscribe(
            daemon, "acc-1", {"extra_emails": ["office@client.example"]}, email="ana@client.example"
        )
        await smtp_sink.wait_for(1)
        legs = [
            await post(daemon, "call.missed", "acc-1", call_id="call-rg", extension=extension)
            for extension in ("101", "102", "103")
        ]
        calls = await settle(smtp_sink, db, 3)
        await post(daemon, "fax.sent", "acc-1")
        messages = await settle(smtp_sink, db, 5)
        rows = await db.fetch(
            "SELECT recipient, state FROM notices WHERE kind = 'call.missed' ORDER BY recipient"
        )

    assert len({leg["event_id"] for leg in legs}) == 3  # three events, one call
    assert len(calls) == 3  # the welcome and the call, once per address
    assert len(smtp_sink.messages) == 5
    by_address = Counter(
        (recipient(smtp_sink, i), str(messages[i]["Subject"])[:20]) for i in range(1, 5)
    )
    assert sorted(address for address, _ in by_address) == [
        "ana@client.example",
        "ana@client.example",
        "office@client.example",
        "office@client.example",
    ]
    assert set(by_address.values()) == {1}  # each notice once at each address
    assert [(row["recipient"], row["state"]) for row in rows] == [
        ("ana@client.example", "sent"),
        ("office@client.example", "sent"),
    ]
    assert len({message["Message-ID"] for message in messages}) == 5
