"""Hard bounces (issue 5, SPEC §5): a 5xx to RCPT counts against the address; at
[delivery] bounce_limit the address is undeliverable: non-mandatory notices are no longer
queued for it, mandatory ones go to the account's other addresses, or fail and are shown
in the dead letters. A 5xx to DATA refuses the message, not the address. A success, or
the admin, clears the count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    WAIT,
    Running,
    SmtpSink,
    eventually,
    load_config,
    running_daemon,
    smtp_server,
)
from tests.integration.admin_support import OPS_TOKEN, admin_config, call
from tests.integration.queue_support import settled_notices

USER_UNKNOWN = "550 5.1.1 <mailbox>: Recipient address rejected: User unknown"
CONTENT_REJECTED = "554 5.6.0 Message content rejected"
SKIPPED = "the address is undeliverable (hard bounces): nothing is sent to it"


@dataclass
class BouncingSink(SmtpSink):
    """An SMTP server where some mailboxes do not exist: RCPT for them gets a 5xx."""

    refuse: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        reply = self.refuse.get(address.lower())
        if reply is not None:
            self.rcpt_commands += 1
            self.refused.append(address.lower())
            return reply
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    def to(self, address: str) -> int:
        return sum(
            address.lower() in (r.lower() for r in recipients) for _, recipients in self.envelopes
        )


@pytest.fixture
async def sink() -> AsyncIterator[BouncingSink]:
    async with smtp_server(BouncingSink()) as served:
        yield served


def bounce_config(tmp_path: Path, database_url: str, port: int) -> dict[str, Any]:
    config = admin_config(tmp_path, database_url, port)
    config["delivery"].update(bounce_limit=3, breaker_threshold=5)
    return config


async def post(daemon: Running, event_type: str, account: str, **data: Any) -> str:
    source, secret = (
        ("billing", BILLING_SECRET) if event_type == "account.created" else ("pbx", PBX_SECRET)
    )
    status, body = await daemon.post(source, sample_event(event_type, account, **data), secret)
    assert status == 202, body
    return str(body["event_id"])


async def notices_of(db: asyncpg.Connection, event_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, state, recipient, smtp_reply, last_error, reasons FROM notices"
        " WHERE event_id = $1 ORDER BY created_at, recipient",
        event_id,
    )


async def settled(db: asyncpg.Connection, event_id: str) -> list[asyncpg.Record]:
    """The notices of an event once none is queued or being sent any more."""

    async def done() -> list[asyncpg.Record]:
        rows = await notices_of(db, event_id)
        if rows and all(row["state"] in ("sent", "failed") for row in rows):
            return rows
        return []

    return await eventually(done, f"the notices of event {event_id} to be sent or failed")


async def bounces(db: asyncpg.Connection, address: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT hard_bounces, undeliverable_at, last_reply FROM address_health"
        " WHERE address = lower($1)",
        address,
    )


async def bounced(db: asyncpg.Connection, address: str, count: int) -> asyncpg.Record:
    """The bounce record once it counts `count` (it is written just after the failure)."""

    async def check() -> asyncpg.Record | None:
        row = await bounces(db, address)
        return row if row is not None and row["hard_bounces"] == count else None

    return await eventually(check, f"{count} hard bounces recorded for {address}")


async def delete(daemon: Running, path: str) -> int:
    """DELETE as the ops token; the status (a 204 has no body to decode)."""
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    async with daemon.session.delete(f"{daemon.admin_url}{path}", headers=headers) as response:
        await response.read()
        return response.status


async def subscriber(
    daemon: Running,
    sink: BouncingSink,
    account: str,
    email: str,
    preferences: dict[str, Any] | None = None,
) -> None:
    """An account whose welcome email arrived, with these preferences."""
    before = len(sink.messages)
    await post(daemon, "account.created", account, email=email, language="en")
    await sink.wait_for(before + 1)
    if preferences:
        status, body = await call(
            daemon, "PATCH", f"/v1/admin/subscribers/{account}/preferences", json=preferences
        )
        assert status == 200, body


async def test_three_hard_bounces_make_an_address_undeliverable_until_the_admin_clears_it(
    tmp_path: Path, database_url: str, sink: BouncingSink, db: asyncpg.Connection
) -> None:
    main, backup = "Ana.Main@Client.example", "backup@other.example"
    config = bounce_config(tmp_path, database_url, sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        # The account's only other address is the one for billing notices.
        await subscriber(daemon, sink, "acc-1", main, {"addresses": {"billing": backup}})
        sink.refuse[main.lower()] = USER_UNKNOWN

        listed_early = []
        for n in range(1, 4):
            event_id = await post(daemon, "fax.sent", "acc-1", remote_number=f"+4021555010{n}")
            [fax] = await settled(db, event_id)
            assert fax["state"] == "failed"
            assert fax["recipient"].lower() == main.lower()
            assert fax["smtp_reply"].startswith("550 5.1.1")
            record = await bounced(db, main, n)
            assert (record["undeliverable_at"] is not None) is (n == 3)
            if n < 3:
                listed_early.append(await call(daemon, "GET", "/v1/admin/undeliverable"))
        listed = await call(daemon, "GET", "/v1/admin/undeliverable")
        assert sink.refused == [main.lower()] * 3

        # A non-mandatory notice is not queued for the address at all.
        with structlog.testing.capture_logs() as logs:
            skipped_event = await post(daemon, "fax.sent", "acc-1", remote_number="+40215550109")
        skipped_notices = await db.fetchval(
            "SELECT count(*) FROM notices WHERE event_id = $1", skipped_event
        )

        # A mandatory one goes to the account's other address instead.
        mandatory_event = await post(daemon, "account.password_changed", "acc-1")
        [mandatory] = await settled(db, mandatory_event)
        # No notice is left to send: nothing more will be tried at the address.
        await settled_notices(db)
        assert sink.refused == [main.lower()] * 3

        # The subscriber fixed the mailbox; the admin clears the address.
        sink.refuse.clear()
        cleared = await delete(daemon, f"/v1/admin/undeliverable/{main}")
        cleared_again = await delete(daemon, f"/v1/admin/undeliverable/{main}")
        listed_after = await call(daemon, "GET", "/v1/admin/undeliverable")
        again_event = await post(daemon, "fax.sent", "acc-1", remote_number="+40215550110")
        [again] = await settled(db, again_event)

    for status, body in listed_early:
        assert (status, body) == (200, {"undeliverable": []})
    assert listed[0] == 200
    [entry] = listed[1]["undeliverable"]
    assert entry["address"] == main.lower()
    assert entry["hard_bounces"] == 3
    assert entry["last_reply"].startswith("550 5.1.1")
    assert entry["undeliverable_at"] is not None

    assert skipped_notices == 0
    stored = [line for line in logs if line.get("event") == "event stored"]
    assert [line.get("skipped") for line in stored] == [SKIPPED]

    assert mandatory["state"] == "sent"
    assert mandatory["recipient"] == backup
    assert sink.to(backup) == 1

    assert cleared == 204
    assert cleared_again == 404
    assert listed_after[1] == {"undeliverable": []}
    assert again["state"] == "sent"
    assert again["recipient"].lower() == main.lower()
    assert sink.to(main) == 2  # the welcome and the fax after the address was cleared
    assert await bounces(db, main) is None


async def test_a_mandatory_notice_that_bounces_is_rerouted_to_the_other_address_once(
    tmp_path: Path, database_url: str, sink: BouncingSink, db: asyncpg.Connection
) -> None:
    config = bounce_config(tmp_path, database_url, sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        # acc-1: security notices go to its own address only; billing ones elsewhere.
        await subscriber(
            daemon, sink, "acc-1", "one@client.example", {"addresses": {"billing": "b1@o.example"}}
        )
        # acc-2: every notice goes to its own address and to an extra one.
        await subscriber(
            daemon, sink, "acc-2", "two@client.example", {"extra_emails": ["b2@o.example"]}
        )
        sink.refuse["one@client.example"] = USER_UNKNOWN
        sink.refuse["two@client.example"] = USER_UNKNOWN

        with structlog.testing.capture_logs() as logs:
            first = await post(daemon, "account.password_changed", "acc-1")
            second = await post(daemon, "account.password_changed", "acc-2")
            await sink.wait_for(4)
            await settled(db, first)
            await settled(db, second)
            await settled_notices(db)  # a second copy sent meanwhile is counted below
        one = await bounces(db, "one@client.example")
    # Read once the daemon has stopped: a reroute is written after the failure it follows,
    # and the stop waits for every send to record its outcome, reroutes included, so a
    # second copy queued too late to be sent is a row here.
    first_notices = await notices_of(db, first)
    second_notices = await notices_of(db, second)

    by_recipient = {row["recipient"]: row for row in first_notices}
    assert set(by_recipient) == {"one@client.example", "b1@o.example"}
    assert by_recipient["one@client.example"]["state"] == "failed"
    assert by_recipient["one@client.example"]["smtp_reply"].startswith("550 5.1.1")
    copy = by_recipient["b1@o.example"]
    assert copy["state"] == "sent"
    assert any("rerouted" in reason for reason in copy["reasons"])
    assert sink.to("b1@o.example") == 1

    # acc-2's extra address had its own copy already: it does not get a second one.
    assert {row["recipient"]: row["state"] for row in second_notices} == {
        "two@client.example": "failed",
        "b2@o.example": "sent",
    }
    assert sink.to("b2@o.example") == 1
    # Nothing was lost: no error says so.
    said = {(line["event"], line["log_level"]) for line in logs if "mandatory" in line["event"]}
    assert said == {
        ("mandatory notice rerouted", "info"),
        ("mandatory notice: the other addresses have their copies", "info"),
    }
    assert sorted(sink.refused) == ["one@client.example", "two@client.example"]
    assert one is not None
    assert one["hard_bounces"] == 1
    assert one["undeliverable_at"] is None


async def test_a_mandatory_notice_with_no_other_address_is_a_dead_letter(
    tmp_path: Path, database_url: str, sink: BouncingSink, db: asyncpg.Connection
) -> None:
    config = bounce_config(tmp_path, database_url, sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await subscriber(daemon, sink, "acc-1", "only@client.example")
        sink.refuse["only@client.example"] = USER_UNKNOWN
        with structlog.testing.capture_logs() as logs:
            event_id = await post(daemon, "account.password_changed", "acc-1")
            [notice] = await settled(db, event_id)
            await bounced(db, "only@client.example", 1)
            # The failure commits before the reroute is looked for and the error logged.
            async with asyncio.timeout(5):
                while not any("undeliverable: no other" in line["event"] for line in logs):
                    await asyncio.sleep(0.02)
        letters = await call(daemon, "GET", "/v1/admin/dead-letters")
        security = await call(daemon, "GET", "/v1/admin/dead-letters?category=security")
        total = await db.fetchval("SELECT count(*) FROM notices WHERE event_id = $1", event_id)

    assert notice["state"] == "failed"
    assert total == 1  # nowhere to reroute it
    assert letters[0] == 200
    [letter] = letters[1]["dead_letters"]
    assert letter["id"] == str(notice["id"])
    assert letter["kind"] == "account.password_changed"
    assert letter["category"] == "security"
    assert letter["recipient"] == "only@client.example"
    assert letter["smtp_reply"].startswith("550 5.1.1")
    assert [x["id"] for x in security[1]["dead_letters"]] == [letter["id"]]
    errors = [line for line in logs if line["log_level"] == "error"]
    assert any("mandatory notice undeliverable" in line["event"] for line in errors)
    assert sink.to("only@client.example") == 1  # the welcome only


async def test_a_5xx_to_data_fails_the_notice_but_is_not_a_bounce(
    tmp_path: Path, database_url: str, sink: BouncingSink, db: asyncpg.Connection
) -> None:
    config = bounce_config(tmp_path, database_url, sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await subscriber(daemon, sink, "acc-1", "user@client.example")
        sink.data_replies.extend([CONTENT_REJECTED] * 4)
        failed = []
        with structlog.testing.capture_logs() as logs:
            for n in range(4):
                event_id = await post(daemon, "fax.sent", "acc-1", remote_number=f"+4021555020{n}")
                failed.extend(await settled(db, event_id))
            # A bounce would be recorded after the failure, and each send's "delivery" line
            # is logged once all its records are written: after the fourth, a bounce of
            # these would be here (the next notice's success would then clear it).
            async with asyncio.timeout(WAIT):
                while sum(line["event"] == "delivery" for line in logs) < 4:
                    await asyncio.sleep(0.02)
        health = await db.fetchval("SELECT count(*) FROM address_health")
        listed = await call(daemon, "GET", "/v1/admin/undeliverable")
        # Still deliverable: the next notice is queued and sent.
        event_id = await post(daemon, "fax.sent", "acc-1", remote_number="+40215550299")
        [sent] = await settled(db, event_id)

    assert [row["state"] for row in failed] == ["failed"] * 4
    assert all(row["smtp_reply"].startswith("554 5.6.0") for row in failed)
    assert health == 0
    assert listed[1] == {"undeliverable": []}
    assert sent["state"] == "sent"
    assert sink.to("user@client.example") == 2


async def test_a_successful_send_clears_the_bounce_count(
    tmp_path: Path, database_url: str, sink: BouncingSink, db: asyncpg.Connection
) -> None:
    address = "flaky@client.example"
    config = bounce_config(tmp_path, database_url, sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await subscriber(daemon, sink, "acc-1", address)

        async def fax(n: int) -> asyncpg.Record:
            event_id = await post(daemon, "fax.sent", "acc-1", remote_number=f"+402155503{n:02}")
            [notice] = await settled(db, event_id)
            return notice

        sink.refuse[address] = USER_UNKNOWN
        assert (await fax(1))["state"] == "failed"
        assert (await fax(2))["state"] == "failed"
        before = await bounced(db, address, 2)
        sink.refuse.clear()
        assert (await fax(3))["state"] == "sent"
        after_success = await bounces(db, address)

        # Counting starts again: two more bounces do not reach the limit of three.
        sink.refuse[address] = USER_UNKNOWN
        assert (await fax(4))["state"] == "failed"
        assert (await fax(5))["state"] == "failed"
        recount = await bounced(db, address, 2)
        listed = await call(daemon, "GET", "/v1/admin/undeliverable")
        sixth = await fax(6)

    assert before["undeliverable_at"] is None
    assert after_success is None
    assert recount["undeliverable_at"] is None
    assert listed[1] == {"undeliverable": []}
    assert sixth["state"] == "failed"  # the third in a row: tried, and now the limit
    assert len(sink.refused) == 5


async def test_a_rerouted_copy_does_not_say_it_went_to_the_address_that_refused_it(
    tmp_path: Path, database_url: str, sink: BouncingSink, db: asyncpg.Connection
) -> None:
    config = bounce_config(tmp_path, database_url, sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        # Security notices go to the office only, which refuses them: the copy goes home.
        await subscriber(
            daemon, sink, "acc-1", "home@client.example", {"addresses": {"security": "o@o.example"}}
        )
        sink.refuse["o@o.example"] = USER_UNKNOWN
        event_id = await post(daemon, "account.password_changed", "acc-1")
        await sink.wait_for(2)
        notices = await settled(db, event_id)

    reasons = {row["recipient"]: row["reasons"] for row in notices}
    assert reasons == {
        "o@o.example": [
            "category security (mandatory)",
            "sent at once: never waits for quiet hours",
            "security notices go to this address",
        ],
        "home@client.example": [
            "category security (mandatory)",
            "sent at once: never waits for quiet hours",
            "rerouted: another address of the account refused this notice (hard bounce)",
        ],
    }
