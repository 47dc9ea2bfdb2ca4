"""The "sent" records of one event-loop turn share a statement (notifyd/delivery/sent_records.py),
and each send still learns whether its own record was written. On a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import UUID

import asyncpg
import pytest

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.delivery.sent_records import SentRecords
from notifyd.intake.facts import IntakeRules
from notifyd.intake.ingest import ingest
from notifyd.settings import CallSettings, DefaultsSettings
from notifyd.storage import db as storage_db
from notifyd.storage import notices as notice_store

TOKEN = uuid.uuid4()


@pytest.fixture
def pool(daemon_pool: asyncpg.Pool) -> asyncpg.Pool:
    return daemon_pool


async def claimed_notices(pool: asyncpg.Pool, count: int, token: UUID) -> list[UUID]:
    rules = IntakeRules(DefaultsSettings(quiet_hours=None), CallSettings(), {}, "voip.example")
    for n in range(count):
        event = sample_event("account.created", f"acc-{n}", email=f"u{n}@client.example")
        await ingest(
            pool,
            source="billing",
            webhook_id=f"msg-{n}-{token}",
            event=parse_event(json.dumps(event).encode()),
            rules=rules,
            now=datetime.now(UTC),
        )
    async with pool.acquire() as conn:
        claimed = (await notice_store.claim_due(conn, count, "host:1", token, 30.0)).notices
    assert len(claimed) == count
    return [c.id for c in claimed]


def counting_statements(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    mark_sent_many = notice_store.mark_sent_many

    async def counted(
        conn: storage_db.Conn,
        sent: Sequence[tuple[UUID, str]],
        token: UUID,
        told: Sequence[str] = (),
    ) -> set[UUID]:
        sizes.append(len(sent))
        return await mark_sent_many(conn, sent, token, told)

    monkeypatch.setattr(notice_store, "mark_sent_many", counted)
    return sizes


async def test_records_of_one_turn_share_a_statement_and_each_is_written(
    pool: asyncpg.Pool, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await claimed_notices(pool, 5, TOKEN)
    sizes = counting_statements(monkeypatch)
    records = SentRecords(pool, TOKEN)

    async with asyncio.timeout(10):
        recorded = await asyncio.gather(*(records.record(i, f"250 ok {i}") for i in ids))
        later = await records.record(ids[0], "250 again")  # a later turn: its own statement

    assert recorded == [True] * 5
    assert later is False  # already sent: the claim token was cleared
    assert sizes == [5, 1]
    rows = await db.fetch("SELECT id, state, smtp_reply, claim_token FROM notices")
    assert {r["id"]: (r["state"], r["smtp_reply"], r["claim_token"]) for r in rows} == {
        i: ("sent", f"250 ok {i}", None) for i in ids
    }


async def test_a_record_without_the_claim_is_refused_alone(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    ours = await claimed_notices(pool, 2, TOKEN)
    theirs = uuid.uuid4()
    await db.execute("UPDATE notices SET claim_token = $1 WHERE id = $2", theirs, ours[1])
    records = SentRecords(pool, TOKEN)

    async with asyncio.timeout(10):
        recorded = await asyncio.gather(*(records.record(i, "250 ok") for i in ours))

    assert recorded == [True, False]
    states = {row["id"]: row["state"] for row in await db.fetch("SELECT id, state FROM notices")}
    assert states == {ours[0]: "sent", ours[1]: "sending"}


async def test_a_failed_statement_reaches_every_send_of_the_batch(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    ids = await claimed_notices(pool, 3, TOKEN)
    records = SentRecords(pool, TOKEN)
    await db.execute("ALTER TABLE notices ADD CONSTRAINT no_sent CHECK (state <> 'sent')")

    async with asyncio.timeout(10):
        outcomes = await asyncio.gather(
            *(records.record(i, "250 ok") for i in ids), return_exceptions=True
        )

    assert all(isinstance(o, asyncpg.CheckViolationError) for o in outcomes), outcomes
    assert await db.fetchval("SELECT count(*) FROM notices WHERE state = 'sending'") == 3


async def test_the_heartbeat_skips_rows_a_batch_of_records_holds(
    pool: asyncpg.Pool, database_url: str, db: asyncpg.Connection
) -> None:
    """A batch of records locks several rows; the heartbeat used to wait for them while
    holding the others, and PostgreSQL aborted one of the two as a deadlock: a sent notice
    left unrecorded, sent again by this host when its lease ended (test_crash.py under
    load). The heartbeat now renews the rows it can take and leaves the rest."""
    ids = await claimed_notices(pool, 3, TOKEN)
    before = {row["id"]: row["due_at"] for row in await db.fetch("SELECT id, due_at FROM notices")}
    recording = await asyncpg.connect(database_url)
    try:
        async with recording.transaction():
            await recording.execute("SELECT 1 FROM notices WHERE id = $1 FOR UPDATE", ids[0])
            async with asyncio.timeout(5), pool.acquire() as conn:
                await notice_store.renew_leases(conn, TOKEN, 300.0)
    finally:
        await recording.close()

    after = {row["id"]: row["due_at"] for row in await db.fetch("SELECT id, due_at FROM notices")}
    assert after[ids[0]] == before[ids[0]]  # held: left for the next beat
    assert all(after[i] > before[i] for i in ids[1:])
