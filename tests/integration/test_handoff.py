"""A commit that queues notices due now claims them for this host's worker, as the claim
would (notices.sql `claim_due`), within the terms the worker offers: its free slots, no
domain paced too far ahead, only emails due now. On a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake.facts import Incoming, IntakeRules
from notifyd.intake.ingest import ingest_batch
from notifyd.settings import CallSettings, DefaultsSettings
from notifyd.storage import notices as notice_store
from notifyd.storage.notices import ClaimTerms
from tests.integration.intake_support import NOW, RULES, reset

TOKEN = uuid.uuid4()


def terms(slots: int = 10, skip: frozenset[str] = frozenset()) -> ClaimTerms:
    return ClaimTerms("host-a:1", TOKEN, 30.0, slots, skip)


def faxes(*accounts: int, rules: IntakeRules = RULES, now: datetime = NOW) -> list[Incoming]:
    """A fax sent per account: one email each (user<n>@client.example), due now by day."""
    return [
        Incoming(
            "pbx",
            f"w-{n}-{uuid.uuid4().hex[:6]}",
            parse_event(json.dumps(sample_event("fax.sent", f"acc-{n}", now)).encode()),
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
