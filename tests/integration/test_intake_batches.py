"""Set-based intake (issue 6): the webhooks that share a commit are stored with one
statement per step for all of them, and still route exactly as they would one after the
other — bursts, legs of one call, thresholds, a subscriber created in the same batch, a
replayed webhook id. On a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake.facts import Incoming, IntakeRules
from notifyd.intake.ingest import Receipt, ingest, ingest_batch
from notifyd.settings import CallSettings, DefaultsSettings
from notifyd.storage.notices import CHANNEL
from tests.integration.intake_support import NOW, RULES, reset


def webhooks() -> list[tuple[str, str, dict[str, Any]]]:
    """(source, webhook id, body): several events of one account among others."""
    call = {"call_id": "1700000000.1"}
    return [
        ("pbx", "w-0", sample_event("call.missed", "acc-1", NOW, **call)),
        # Another call of the same account a minute later: gathered into a follow-up.
        ("pbx", "w-1", sample_event("call.missed", "acc-1", NOW, call_id="1700000000.2")),
        # Another leg of the first call (a ring group): no second email.
        ("pbx", "w-2", sample_event("call.missed", "acc-1", NOW, **call)),
        ("billing", "w-3", sample_event("billing.balance_updated", "acc-2", NOW, balance="3.00")),
        # Still low: the crossing above already told.
        ("billing", "w-4", sample_event("billing.balance_updated", "acc-2", NOW, balance="2.50")),
        ("billing", "w-5", sample_event("account.created", "acc-4", NOW, email="new@c.example")),
        # The account created just before, in the same batch.
        ("pbx", "w-6", sample_event("fax.sent", "acc-4", NOW)),
        # A retry of the first webhook racing the original.
        ("pbx", "w-0", sample_event("call.missed", "acc-1", NOW, **call)),
        ("pbx", "w-8", sample_event("fax.sent", "acc-3", NOW)),
        # An account notifyd does not know.
        ("pbx", "w-9", sample_event("fax.sent", "acc-404", NOW)),
    ]


def incoming() -> list[Incoming]:
    return [
        Incoming(source, webhook_id, parse_event(json.dumps(body).encode()), RULES, NOW)
        for source, webhook_id, body in webhooks()
    ]


@pytest.fixture
def pool(daemon_pool: asyncpg.Pool) -> asyncpg.Pool:
    return daemon_pool


def outcome(receipts: list[Receipt], event_ids: dict[Any, int]) -> list[tuple[Any, ...]]:
    """Per webhook: duplicate or not (and of which), what was queued or why not."""
    described = []
    for n, receipt in enumerate(receipts):
        event_ids.setdefault(receipt.event_id, n)
        routing = receipt.routing
        described.append(
            (
                receipt.duplicate,
                event_ids[receipt.event_id],
                tuple(sorted((p.kind, p.recipient, p.digest) for p in routing.notices))
                if routing
                else (),
                routing.skipped.reason if routing and routing.skipped else None,
            )
        )
    return described


async def stored(db: asyncpg.Connection, event_ids: dict[Any, int]) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        "SELECT event_id, account_id, kind, recipient, state, digest, due_at FROM notices"
    )
    notices = sorted(
        (
            event_ids[r["event_id"]],
            r["account_id"],
            r["kind"],
            r["recipient"],
            r["state"],
            r["digest"],
            r["due_at"] - NOW,
        )
        for r in rows
    )
    credit = [
        tuple(r) for r in await db.fetch("SELECT account_id, level, balance FROM credit_states")
    ]
    return [*notices, *credit]


async def test_a_shared_batch_routes_as_the_same_webhooks_one_after_the_other(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await reset(db)
    async with pool.acquire() as conn, conn.transaction():
        together = await ingest_batch(conn, incoming())
    together_ids: dict[Any, int] = {}
    batch_outcome = outcome(together, together_ids)
    batch_rows = await stored(db, together_ids)

    await reset(db)
    alone = [
        await ingest(
            pool,
            source=one.source,
            webhook_id=one.webhook_id,
            event=one.event,
            rules=one.rules,
            now=one.now,
        )
        for one in incoming()
    ]
    alone_ids: dict[Any, int] = {}
    assert batch_outcome == outcome(alone, alone_ids)
    assert batch_rows == await stored(db, alone_ids)

    # And what one after the other means, spelled out:
    first, follow_up, leg, low, still_low, created, fax_new, replay, fax, unknown = batch_outcome
    assert first[2] == (("call.missed", "user1@client.example", None),)
    assert follow_up[2] == (("call.missed", "user1@client.example", "burst"),)
    assert leg[2] == ()
    assert "an earlier leg of this call" in (leg[3] or "")
    assert low[2] == (("credit.low", "user2@client.example", None),)
    assert still_low[2] == ()
    assert created[2] == (("account.created", "new@c.example", None),)
    assert fax_new[2] == (("fax.sent", "new@c.example", None),)
    assert replay[:2] == (True, 0)
    assert fax[2] == (("fax.sent", "user3@client.example", None),)
    assert unknown[2] == ()
    assert unknown[3]
    assert ("acc-2", "low", Decimal("2.50")) in batch_rows


async def test_a_batch_with_a_notice_due_now_wakes_the_workers_once_committed(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await reset(db)
    woken: asyncio.Queue[str] = asyncio.Queue()
    await db.add_listener(CHANNEL, lambda *args: woken.put_nowait(args[1]))
    quiet = IntakeRules(DefaultsSettings(), CallSettings(), {}, "voip.example")
    night = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 03:00 in Bucharest: quiet hours

    def fax(n: int, now: datetime) -> Incoming:
        body = sample_event("fax.sent", "acc-3", now)
        return Incoming("pbx", f"w-{n}", parse_event(json.dumps(body).encode()), quiet, now)

    async with pool.acquire() as conn, conn.transaction():
        held = await ingest_batch(conn, [fax(1, night)])
    assert held[0].routing is not None
    assert held[0].routing.notices[0].due_at > night  # waits for the morning
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(woken.get(), 0.5)

    async with pool.acquire() as conn, conn.transaction():
        await ingest_batch(conn, [fax(2, NOW), fax(3, NOW)])
        with pytest.raises(TimeoutError):  # not before the commit
            await asyncio.wait_for(woken.get(), 0.3)
    await asyncio.wait_for(woken.get(), 10)
    assert woken.empty()  # one wake-up for the batch
