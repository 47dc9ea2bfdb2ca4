"""A commit that queues notices due now claims them for this host's worker, as the claim
would (notices.sql `claim_due`), within the terms the worker offers: its free slots, no
domain paced too far ahead, only emails due now. On a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import pytest

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake import restriction
from notifyd.intake.facts import Incoming, IntakeRules
from notifyd.intake.ingest import Receipt, ingest_batch
from notifyd.settings import CallSettings, DefaultsSettings
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.db import Conn
from notifyd.storage.notices import ClaimTerms
from notifyd.storage.waves import SQL as WAVES
from tests.conftest import WAIT
from tests.integration.intake_support import NOW, RULES, reset

TOKEN = uuid.uuid4()


def terms(slots: int = 10, skip: frozenset[str] = frozenset()) -> ClaimTerms:
    return ClaimTerms("host-a:1", TOKEN, 30.0, slots, skip)


def faxes(*accounts: int, rules: IntakeRules = RULES, now: datetime = NOW) -> list[Incoming]:
    """A fax sent per account: one email each (user<n>@client.example), due now by day."""
    return webhooks("fax.sent", *accounts, rules=rules, now=now)


def webhooks(
    kind: str, *accounts: int, rules: IntakeRules = RULES, now: datetime = NOW
) -> list[Incoming]:
    """A sample event of `kind` per account."""
    return [
        Incoming(
            "pbx",
            f"w-{n}-{uuid.uuid4().hex[:6]}",
            parse_event(json.dumps(sample_event(kind, f"acc-{n}", now)).encode()),
            rules,
            now,
        )
        for n in accounts
    ]


@pytest.fixture
def pool(daemon_pool: asyncpg.Pool) -> asyncpg.Pool:
    return daemon_pool


async def rows(db: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    found = await db.fetch(
        "SELECT account_id, state, claimed_by, claim_token, attempts,"
        " due_at - now() AS lease FROM notices"
    )
    return {r["account_id"]: r for r in found}


async def test_a_notice_claimed_as_it_is_queued_is_the_notice_a_claim_returns(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await reset(db)
    async with pool.acquire() as conn, conn.transaction():
        (handed,) = await ingest_batch(conn, faxes(1), terms())
        (left,) = await ingest_batch(conn, faxes(2))
    (ours,) = handed.claimed
    assert left.claimed == ()
    async with pool.acquire() as conn:
        claim = await notice_store.claim_due(conn, 10, "host-a:1", TOKEN, 30.0)
    (claimed,) = claim.notices

    # Everything but what belongs to the account, the row and the moment is the same.
    own = ("id", "event_id", "account_id", "recipient", "message_id", "created_at")
    mine: dict[str, Any] = {f: getattr(claimed, f) for f in own}
    mine["lifetime_from"] = claimed.lifetime_from
    mine["data"] = {**ours.data, "account_id": "acc-2"}
    assert dataclasses.replace(ours, **mine) == claimed
    assert ours.recipient == "user1@client.example"
    assert ours.lifetime_from == ours.created_at
    assert ours.data["account_id"] == "acc-1"  # the event's fields, as stored
    found = await rows(db)
    assert found["acc-1"]["state"] == "sending"
    assert (found["acc-1"]["claimed_by"], found["acc-1"]["claim_token"]) == ("host-a:1", TOKEN)
    assert found["acc-1"]["attempts"] == 1
    assert 25 < found["acc-1"]["lease"].total_seconds() <= 30


async def test_no_more_are_claimed_than_the_terms_have_slots_and_the_rest_wake_the_workers(
    pool: asyncpg.Pool, db: asyncpg.Connection, database_url: str
) -> None:
    await reset(db)
    listener = await asyncpg.connect(database_url)
    woken: list[str] = []
    await listener.add_listener(notice_store.CHANNEL, lambda *args: woken.append(args[2]))
    try:
        # Two waves (acc-1 twice): the first takes the slots; they are the batch's, not
        # each wave's.
        batch = [*faxes(1, 2), *faxes(1, 3)]
        async with pool.acquire() as conn, conn.transaction():
            receipts = await ingest_batch(conn, batch, terms(slots=3))
        await listener.execute("SELECT 1")  # the notification arrives before this reply
        await asyncio.sleep(0.05)  # and its callback runs
    finally:
        await listener.close()
    assert [len(r.claimed) for r in receipts] == [1, 1, 0, 1]
    states = sorted(r["state"] for r in await db.fetch("SELECT state FROM notices"))
    assert states == ["queued", "sending", "sending", "sending"]
    assert woken == [notice_store.CHANNEL]  # for the one left, once


async def test_a_claim_takes_neither_a_paced_domain_nor_a_notice_due_later(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await reset(db)
    quiet = IntakeRules(DefaultsSettings(), CallSettings(), {}, "voip.example")
    night = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 03:00 in Bucharest: quiet hours
    async with pool.acquire() as conn, conn.transaction():
        paced = await ingest_batch(conn, faxes(1), terms(skip=frozenset({"client.example"})))
        later = await ingest_batch(conn, faxes(2, rules=quiet, now=night), terms())
        unoffered = await ingest_batch(conn, faxes(3), None)
    assert [r.claimed for r in (*paced, *later, *unoffered)] == [(), (), ()]
    found = await rows(db)
    assert [found[f"acc-{n}"]["state"] for n in (1, 2, 3)] == ["queued"] * 3
    assert all(found[f"acc-{n}"]["claimed_by"] is None for n in (1, 2, 3))
    assert found["acc-2"]["state"] == "queued"  # for the morning


HELD = "held: processing of the account is restricted"


async def test_a_restricted_accounts_notices_are_held_not_handed_over(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """Routing reads the flag on the row the wave holds locked: the fax of the restricted
    account is stored 'restricted', with the restriction's reason, and not claimed; its
    password change (security, mandatory) and the other account's fax are."""
    await reset(db)
    await db.execute("UPDATE subscribers SET restricted_at = now() WHERE account_id = 'acc-1'")
    batch = [*faxes(1, 2), *webhooks("account.password_changed", 1)]
    async with pool.acquire() as conn, conn.transaction():
        receipts = await ingest_batch(conn, batch, terms())
    found = await db.fetch("SELECT account_id, kind, state, last_error FROM notices")
    assert [len(r.claimed) for r in receipts] == [0, 1, 1]
    assert sorted(tuple(r) for r in found) == [
        ("acc-1", "account.password_changed", "sending", None),
        ("acc-1", "fax.sent", "restricted", HELD),
        ("acc-2", "fax.sent", "sending", None),
    ]


async def _held_by(change: str, conn: Conn) -> None:
    if change == "restricted":
        await restriction.restrict(conn, "acc-1")
    else:
        subscriber = await subscriber_store.get(conn, "acc-1", lock=True)
        assert subscriber is not None
        off = dataclasses.replace(subscriber.preferences, modes={"fax": "off"})
        await subscriber_store.save_preferences(
            conn,
            dataclasses.replace(subscriber, preferences=off),
            before=subscriber,
            erasure_key=b"",
        )


@pytest.mark.parametrize("change", ["restricted", "fax off"])
async def test_a_change_committed_while_the_wave_waits_for_the_lock_is_what_it_routes_on(
    pool: asyncpg.Pool, db: asyncpg.Connection, change: str
) -> None:
    """A restriction or a preference change holds the subscriber's row while it is made;
    a wave for that account waits for it, and routes on what it committed: nothing of it is
    handed over (a wave that read the subscriber without its lock would send the fax)."""
    await reset(db)
    async with pool.acquire() as other, pool.acquire() as conn:
        changing = other.transaction()
        await changing.start()
        try:
            await _held_by(change, other)

            async def wave() -> list[Receipt]:
                async with conn.transaction():
                    return await ingest_batch(conn, faxes(1), terms())

            waiting = asyncio.create_task(wave())
            async with asyncio.timeout(WAIT):
                while not await db.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ):
                    await asyncio.sleep(0.02)
            await changing.commit()
        finally:
            if other.is_in_transaction():
                await changing.rollback()
        (receipt,) = await asyncio.wait_for(waiting, WAIT)
    found = [tuple(r) for r in await db.fetch("SELECT state, last_error FROM notices")]
    assert receipt.claimed == ()
    if change == "restricted":
        assert found == [("restricted", HELD)]
    else:
        assert found == []
        assert receipt.routing is not None
        assert receipt.routing.skipped is not None
        assert receipt.routing.skipped.code == "category_off"


class _BounceBeforeQueue:
    """A connection on which an address is marked undeliverable, by another connection
    that commits it, just before the wave's queue statement: as a hard bounce recorded
    between the wave's facts and its queue (it locks no subscriber)."""

    def __init__(self, conn: Conn, bounce: asyncpg.Connection) -> None:
        self._conn, self._bounce = conn, bounce

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if query == WAVES["queue"]:
            await self._bounce.execute(
                "INSERT INTO address_health (address, hard_bounces, undeliverable_at)"
                " VALUES ('user1@client.example', 3, now()) ON CONFLICT DO NOTHING"
            )
        return await self._conn.fetch(query, *args)


async def test_an_address_that_bounced_since_the_facts_is_not_handed_over(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    """The fax to it stays queued, for the claim to cancel, saying why; a password change
    to it (mandatory: routing's reroute rules decide) and the other account's fax go."""
    await reset(db)
    await db.execute("DELETE FROM address_health")
    batch = [*faxes(1, 2), *webhooks("account.password_changed", 1)]
    try:
        async with pool.acquire() as conn, conn.transaction():
            receipts = await ingest_batch(cast(Conn, _BounceBeforeQueue(conn, db)), batch, terms())
        left = await db.fetch("SELECT account_id, kind, state FROM notices")
        async with pool.acquire() as conn:
            claim = await notice_store.claim_due(conn, 10, "host-b:1", uuid.uuid4(), 30.0)
        fax = await db.fetchrow(
            "SELECT state, last_error FROM notices WHERE account_id = 'acc-1' AND kind = 'fax.sent'"
        )
    finally:
        await db.execute("DELETE FROM address_health")
    assert [len(r.claimed) for r in receipts] == [0, 1, 1]
    assert sorted(tuple(r) for r in left) == [
        ("acc-1", "account.password_changed", "sending"),
        ("acc-1", "fax.sent", "queued"),
        ("acc-2", "fax.sent", "sending"),
    ]
    assert claim.notices == []
    assert fax is not None
    assert tuple(fax) == ("cancelled", "cancelled: the address is undeliverable (hard bounces)")
