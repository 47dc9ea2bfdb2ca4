"""The circuit breaker end to end (issue 5): a relay that refuses everything (it no longer
relays for us, or our password is wrong) pauses delivery and alerts, instead of failing a
day's notices; when the relay accepts again everything is delivered, once."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    Running,
    SmtpSink,
    base_config,
    eventually,
    load_config,
    running_daemon,
    smtp_server,
    write_config,
)
from tests.integration.admin_support import admin_config, call
from tests.integration.callbacks_support import (
    callback_config,
    callback_receiver,
    callback_rows,
    wait_callback_state,
)

RELAYING_DENIED = "550 5.7.1 Relaying denied"
SUBSCRIBERS = 6
ALERT = "the relay refuses everything: delivery paused, notices kept"


async def metric(daemon: Running, name: str) -> float:
    async with daemon.session.get(f"{daemon.admin_url}/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not in /metrics"
    return float(found[1])


async def states(db: asyncpg.Connection) -> Counter[str]:
    return Counter(row["state"] for row in await db.fetch("SELECT state FROM notices"))


async def add_subscribers(db: asyncpg.Connection, count: int) -> list[str]:
    addresses = [f"user{n}@client{n}.example" for n in range(count)]
    await db.executemany(
        "INSERT INTO subscribers (account_id, email, language) VALUES ($1, $2, 'en')",
        [(f"acc-{n}", address) for n, address in enumerate(addresses)],
    )
    return addresses


async def post_fax(daemon: Running, n: int) -> None:
    event = sample_event("fax.sent", f"acc-{n}", remote_number=f"+40215550{n:03d}")
    status, body = await daemon.post("pbx", event, PBX_SECRET)
    assert status == 202, body


async def post_faxes(daemon: Running, count: int) -> None:
    for n in range(count):
        await post_fax(daemon, n)


def delivered_once(sink: SmtpSink, addresses: list[str]) -> Counter[str]:
    return Counter(r for _, recipients in sink.envelopes for r in recipients if r in addresses)


async def test_a_relay_refusing_everything_pauses_delivery_and_loses_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    addresses = await add_subscribers(db, SUBSCRIBERS)
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["delivery"].update(breaker_threshold=3, breaker_cooldown_seconds=1, bounce_limit=1)
    smtp_sink.rcpt_replies.extend([RELAYING_DENIED] * 10_000)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        with structlog.testing.capture_logs() as logs:
            await post_faxes(daemon, SUBSCRIBERS)

            # Every notice was tried and refused, and they all wait in the queue.
            async def held() -> bool:
                tried = await db.fetchval("SELECT bool_and(attempts >= 1) FROM notices")
                return bool(tried) and (await states(db)) == {"queued": SUBSCRIBERS}

            # The cooldown doubles with each refused try (1, 2, 4 s...): how many tries it
            # takes depends on how many sends were in flight when it opened, so the waits
            # allow for a few doublings rather than the 15 s of one step.
            await eventually(held, "every notice tried once and back in the queue", timeout=45)
            paused = await metric(daemon, "notifyd_delivery_paused")
            trips = await metric(daemon, "notifyd_breaker_trips_total")
            # Stays paused through the cooldown: nothing fails meanwhile.
            seen_states: Counter[str] = Counter()
            for _ in range(10):
                seen_states.update(await states(db))
                await asyncio.sleep(0.05)
            health = await db.fetch("SELECT address, hard_bounces FROM address_health")
            undeliverable = await call(daemon, "GET", "/v1/admin/undeliverable")
            refusals = smtp_sink.rcpt_commands

        # The relay accepts us again.
        smtp_sink.rcpt_replies.clear()

        async def all_sent() -> bool:
            return (await states(db)) == {"sent": SUBSCRIBERS}

        # All sent, none left to send: the sink's count after the daemon's stop (which lets
        # a send in progress finish) is final, duplicates included.
        await eventually(all_sent, "every notice sent once the relay accepts again", timeout=45)
        paused_after = await metric(daemon, "notifyd_delivery_paused")

    assert seen_states["failed"] == 0
    assert paused == 1.0
    assert trips >= 1.0
    # bounce_limit is 1: a bounce the breaker had not forgiven would have shown here.
    assert all(row["hard_bounces"] == 0 for row in health), health
    assert undeliverable[1] == {"undeliverable": []}
    assert refusals >= 3
    assert [line for line in logs if line["event"] == ALERT]
    assert all(line["log_level"] == "error" for line in logs if line["event"] == ALERT)
    assert delivered_once(smtp_sink, addresses) == dict.fromkeys(addresses, 1)
    assert len(smtp_sink.messages) == SUBSCRIBERS
    assert paused_after == 0.0


async def test_a_refused_streak_is_never_left_failed_whatever_the_timing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """Many notices refused at the same moment (a full batch of concurrent sends): the
    ones recorded as failed before the breaker opened are all put back."""
    count = 16
    await add_subscribers(db, count)
    config = base_config(
        tmp_path,
        database_url,
        smtp_sink.port,
        delivery={"breaker_threshold": 5, "breaker_cooldown_seconds": 30, "concurrency": 16},
        smtp={"pool_size": 16},
    )
    smtp_sink.rcpt_replies.extend([RELAYING_DENIED] * 10_000)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        # Posted together, so that a batch of sends is refused at about the same moment.
        await asyncio.gather(*(post_fax(daemon, n) for n in range(count)))

        async def paused_and_settled() -> bool:
            if await metric(daemon, "notifyd_delivery_paused") != 1.0:
                return False
            return "sending" not in await states(db)

        await eventually(paused_and_settled, "the breaker to open and the sends to settle")
        paused = await metric(daemon, "notifyd_delivery_paused")
    # Read once the daemon has stopped, not after a sleep: a failure recorded before the
    # breaker opened is put back by a statement of its own, after the record; the stop
    # waits for every send in progress to record its outcome, restores included.
    final = await states(db)
    tried = await db.fetchval("SELECT count(*) FROM notices WHERE attempts >= 1")
    failed = await db.fetch("SELECT recipient, last_error FROM notices WHERE state = 'failed'")
    assert tried >= 5  # the breaker's threshold: it opened on refusals, not on nothing
    assert paused == 1.0
    assert failed == [], f"left failed while the relay refused everything: {failed}"
    assert final == {"queued": count}


class Accounts:
    """aiosmtpd's authenticator: one user and password."""

    def __init__(self, username: str, password: str) -> None:
        self.expected = (username.encode(), password.encode())
        self.attempts = 0

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.attempts += 1
        if isinstance(data, LoginPassword) and (data.login, data.password) == self.expected:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


# Loopback without TLS is what the test wants; aiosmtpd warns (an error under our filters).
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_a_wrong_relay_password_pauses_delivery_until_the_config_is_fixed(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    accounts = Accounts("notifyd", "the-right-one")
    relay = smtp_server(
        SmtpSink(), auth_required=True, auth_require_tls=False, authenticator=accounts
    )
    async with relay as sink:
        config = base_config(
            tmp_path,
            database_url,
            sink.port,
            smtp={"username": "notifyd", "password": "a-wrong-one"},
            # A long pause: only the reload can explain a delivery within the test's time.
            delivery={"breaker_threshold": 3, "breaker_cooldown_seconds": 60},
        )
        settings = load_config(tmp_path, config)
        async with running_daemon(settings) as daemon:
            with structlog.testing.capture_logs() as logs:
                for n in range(4):
                    event = sample_event(
                        "account.created", f"acc-{n}", email=f"user{n}@client.example"
                    )
                    assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202

                async def refused() -> bool:
                    return (
                        accounts.attempts >= 1
                        and (await metric(daemon, "notifyd_delivery_paused")) == 1.0
                        and "sending" not in await states(db)
                    )

                await eventually(refused, "the refused login to pause delivery")
                logins_before = accounts.attempts
                # The pause is what this tests: for a second (retries come every 0.2-1 s
                # here), no login at all, and no notice failed.
                await asyncio.sleep(1.0)
                while_paused = await states(db)
                logins_while_paused = accounts.attempts - logins_before
                errors = await db.fetch("SELECT DISTINCT last_error FROM notices")

            config["smtp"]["password"] = "the-right-one"
            write_config(settings.path, config)
            assert await daemon.daemon.reload()

            async def all_sent() -> bool:
                return (await states(db)) == {"sent": 4}

            # None left to send: the sink's count after the stop is final.
            await eventually(all_sent, "every notice sent after the password was fixed")
            paused_after = await metric(daemon, "notifyd_delivery_paused")

    assert "failed" not in while_paused
    assert sum(while_paused.values()) == 4
    # Paused: the relay is not hammered with a login per notice. (Before the pause, the
    # sends already under way each tried once; aiosmtplib tries PLAIN, then LOGIN.)
    assert logins_while_paused == 0
    assert logins_before <= 2 * 4
    assert all(row["last_error"] is None or row["last_error"].startswith("535") for row in errors)
    assert [line for line in logs if line["event"] == ALERT]
    assert sorted(str(m["To"]) for m in sink.messages) == [
        f"user{n}@client.example" for n in range(4)
    ]
    assert paused_after == 0.0


async def test_a_failure_the_breaker_withdraws_is_never_told_to_the_source(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """The refusals that open the breaker were the relay's, not the notices': the source's
    callback hears `notice.delivered` once the relay accepts again, never a `notice.failed`
    for a failure the breaker took back (the PBX would act on it: keep a voicemail, alert)."""
    addresses = await add_subscribers(db, SUBSCRIBERS)
    async with callback_receiver() as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver)
        config["delivery"].update(breaker_threshold=3, breaker_cooldown_seconds=1)
        smtp_sink.rcpt_replies.extend([RELAYING_DENIED] * 10_000)
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            await post_faxes(daemon, SUBSCRIBERS)

            async def paused() -> bool:
                return await metric(daemon, "notifyd_delivery_paused") == 1.0

            await eventually(paused, "the breaker to open")
            # Time for the sender to post anything it had been given (it polls every 0.2 s
            # here, and is woken at once by a failure's record).
            await asyncio.sleep(1.0)
            smtp_sink.rcpt_replies.clear()
            await wait_callback_state(db, "delivered", SUBSCRIBERS)
        rows = await callback_rows(db)
    assert delivered_once(smtp_sink, addresses) == dict.fromkeys(addresses, 1)
    told = Counter(p.body["type"] for p in receiver.posts)
    assert told == {"notice.delivered": SUBSCRIBERS}, told
    assert {r["type"] for r in rows} == {"notice.delivered"}


async def test_a_refusal_a_delivery_confirms_is_told_at_once(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """A refusal is held back from the callback only while the breaker might withdraw it:
    a delivery right after shows the relay works, and the failure is told then, not at the
    end of the (here minute-long) cooldown."""
    await add_subscribers(db, 2)
    async with callback_receiver() as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver)
        config["delivery"].update(breaker_threshold=3, breaker_cooldown_seconds=60)
        smtp_sink.rcpt_replies.append("550 5.1.1 No such user")
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            await post_fax(daemon, 0)
            await eventually(
                lambda: db.fetchval("SELECT count(*) = 1 FROM callbacks"), "the failure recorded"
            )
            held = await db.fetchval("SELECT due_at - now() FROM callbacks")
            await post_fax(daemon, 1)
            rows = await wait_callback_state(db, "delivered", 2)
    assert held.total_seconds() > 30
    assert Counter(r["type"] for r in rows) == {"notice.failed": 1, "notice.delivered": 1}
    assert Counter(p.body["type"] for p in receiver.posts) == {
        "notice.failed": 1,
        "notice.delivered": 1,
    }
