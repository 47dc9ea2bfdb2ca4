"""Broadcasts and their batched fan-out (table `broadcasts`)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from notifyd.events import Category
from notifyd.preferences import Preferences
from notifyd.routing import NoticePlan, Subscriber, route_broadcast
from notifyd.settings import DefaultsSettings
from notifyd.storage import addresses as address_store
from notifyd.storage import notices as notice_store
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("broadcasts")
# Subscribers routed between two turns of the event loop.
CHUNK = 200
# Notices of one shared plan inserted by one statement: PostgreSQL works while the loop is
# free, and each statement is a round trip the fan-out waits for.
SHARED_CHUNK = 1000


@dataclass(frozen=True)
class Runnable:
    id: UUID
    kind: str
    event_id: UUID
    cursor: str


@dataclass(frozen=True)
class Batch:
    state: str
    queued: int
    added: int


async def create(
    conn: Conn,
    kind: str,
    content: dict[str, Any],
    starts_at: datetime,
    created_by: str | None,
) -> UUID:
    broadcast_id, event_id = uuid4(), uuid4()
    await conn.execute(SQL["insert_event"], event_id, str(broadcast_id), kind, content)
    await conn.execute(SQL["insert_broadcast"], broadcast_id, kind, event_id, starts_at, created_by)
    return broadcast_id


async def next_runnable(conn: Conn) -> Runnable | None:
    """Locks the broadcast for the caller's transaction (skipped by other hosts)."""
    row = await conn.fetchrow(SQL["next_runnable"])
    return None if row is None else Runnable(**dict(row))


async def fan_out_batch(
    conn: Conn,
    broadcast: Runnable,
    *,
    size: int,
    defaults: DefaultsSettings,
    message_domain: str,
    now: datetime,
) -> Batch:
    """Queue the next `size` accounts' notices and move the cursor, in the caller's
    transaction. The dedupe key makes a replayed batch add nothing."""
    marketing = broadcast.kind == "marketing.offer"
    category = Category.MARKETING if marketing else Category.SERVICE
    reasons = (
        ("category marketing", "offer to subscribers with consent, not unsubscribed")
        if marketing
        else ("category service (mandatory)", "broadcast to every open account")
    )
    rows = await conn.fetch(SQL["fan_out_candidates"], broadcast.cursor, size, marketing)
    # Most accounts share their language, zone and (empty) preferences: route each such
    # group once and only put in each account's own address (a per-row route of a million
    # accounts would hold the event loop, and the webhooks, for too long).
    groups: dict[tuple[str | None, str | None, str], list[asyncpg.Record]] = {}
    for row in rows:
        groups.setdefault((row["language"], row["timezone"], row["preferences"]), []).append(row)
    # Each distinct preferences text decoded once, for the lookups and for routing.
    decoded = {stored: Preferences.from_json(json.loads(stored)) for _, _, stored in groups}
    addresses = {row["email"].lower() for row in rows}
    for chosen in decoded.values():
        addresses.update(a.lower() for a in chosen.addresses.get(category.value, ()))
        addresses.update(a.lower() for a in chosen.extra_emails)
    suppressed: frozenset[str] = frozenset()
    if marketing:
        found = await conn.fetch(SQL["suppressed_among"], list(addresses))
        suppressed = frozenset(row["address"] for row in found)
    # Hard-bounced addresses: a mandatory notice goes to the account's other addresses.
    undeliverable = await address_store.undeliverable_among(conn, addresses)
    planned: list[tuple[str, NoticePlan]] = []  # routed one by one
    added = 0

    def route(
        subscriber: Subscriber,
        suppressed: frozenset[str],
        undeliverable: frozenset[str] = undeliverable,
    ) -> tuple[NoticePlan, ...]:
        return route_broadcast(
            broadcast.kind,
            category,
            subscriber,
            defaults,
            now,
            dedupe_key=f"broadcast:{broadcast.id}",
            reasons=reasons,
            suppressed=suppressed,
            undeliverable=undeliverable,
        )

    for (language, zone, stored), members in groups.items():
        preferences = decoded[stored]

        if preferences.addresses or preferences.extra_emails:
            for n, row in enumerate(members, 1):
                planned.extend(
                    (row["account_id"], p)
                    for p in route(_subscriber(row, language, zone, preferences), suppressed)
                )
                if n % CHUNK == 0:
                    await asyncio.sleep(0)
            continue
        # The same route for the whole group, each to the account's own address: one plan,
        # and only the accounts and addresses travel (no per-row objects to build).
        # (Routed as if nothing were suppressed or undeliverable: those are checked per row.)
        shared = route(
            _subscriber(members[0], language, zone, preferences), frozenset(), frozenset()
        )
        accounts: list[str] = []
        recipients: list[str] = []
        for row in members:
            email = row["email"]
            if email.lower() in undeliverable:
                planned.extend(
                    (row["account_id"], p)
                    for p in route(_subscriber(row, language, zone, preferences), suppressed)
                )
            elif shared and email.lower() not in suppressed:
                accounts.append(row["account_id"])
                recipients.append(email)
        for start in range(0, len(accounts), SHARED_CHUNK):
            # Chunks in the same transaction, the event loop free between them: 5,000 rows
            # at once held it for tens of milliseconds, which webhooks paid in p99.
            added += await notice_store.insert_shared(
                conn,
                broadcast.event_id,
                accounts[start : start + SHARED_CHUNK],
                recipients[start : start + SHARED_CHUNK],
                shared[0],
                message_domain,
            )
    for start in range(0, len(planned), CHUNK):
        added += len(
            await notice_store.insert_for_accounts(
                conn, broadcast.event_id, planned[start : start + CHUNK], message_domain
            )
        )
    advanced = await conn.fetchrow(
        SQL["advance"],
        broadcast.id,
        rows[-1]["account_id"] if rows else None,
        added,
        len(rows) < size,
    )
    assert advanced is not None
    return Batch(state=advanced["state"], queued=int(advanced["queued"]), added=added)


def _subscriber(
    row: asyncpg.Record, language: str | None, zone: str | None, preferences: Preferences
) -> Subscriber:
    return Subscriber(
        account_id=row["account_id"],
        email=row["email"],
        language=language,
        timezone=zone,
        preferences=preferences,
    )


async def get(conn: Conn, broadcast_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(SQL["get_broadcast"], broadcast_id)
    if row is None:
        return None
    record = dict(row)
    return {
        "id": str(record["id"]),
        "kind": record["kind"],
        "state": record["state"],
        "starts_at": record["starts_at"].isoformat(),
        "queued": record["queued"],
        "sent": record["sent"],
        "created_by": record["created_by"],
        "created_at": record["created_at"].isoformat(),
        "finished_at": record["finished_at"].isoformat() if record["finished_at"] else None,
        "subject": record["data"].get("subject"),
    }


async def cancel(conn: Conn, broadcast_id: UUID) -> tuple[bool, int]:
    row = await conn.fetchrow(SQL["cancel_broadcast"], broadcast_id)
    assert row is not None
    return bool(row["cancelled"]), int(row["notices"])
