"""Broadcasts and their batched fan-out (table `broadcasts`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from notifyd.catalogue.events import Category
from notifyd.rules.preferences import Preferences
from notifyd.rules.routing import NoticePlan, Subscriber, route_broadcast
from notifyd.settings import DefaultsSettings
from notifyd.storage import addresses as address_store
from notifyd.storage import notices as notice_store
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("broadcasts")
# Subscribers routed between two turns of the event loop.
CHUNK = 200


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
    found = await conn.fetch(SQL["fan_out_groups"], broadcast.cursor, size, marketing)
    last, spanned = found[0]["last"], found[0]["spanned"]
    groups = [group for group in found if group["preferences"] is not None]
    if not groups:  # nothing left, or only closed (or, for an offer, unwilling) accounts
        return await _advance(conn, broadcast, last, 0, done=spanned < size)
    # Each distinct preferences text decoded once, for the routes and the lookups.
    decoded = {
        g["preferences"]: Preferences.from_json(json.loads(g["preferences"])) for g in groups
    }

    def route(
        subscriber: Subscriber,
        suppressed: frozenset[str] = frozenset(),
        undeliverable: frozenset[str] = frozenset(),
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

    # Most accounts share their language, zone and preferences: each such group is routed
    # once (as if nothing were suppressed or undeliverable: PostgreSQL checks those per row)
    # and queued by PostgreSQL, each notice to the account's own address. Only the accounts
    # routing must see one by one come back: every row through the event loop and back held
    # the webhooks, and the fan-out waited for both trips.
    alike: list[tuple[asyncpg.Record, NoticePlan | None]] = []
    for group in groups:
        preferences = decoded[group["preferences"]]
        if preferences.addresses or preferences.extra_emails:
            continue  # its own addresses: routed one by one
        shared = route(_subscriber(group, group["language"], group["timezone"], preferences))
        alike.append((group, shared[0] if shared else None))
    rows = await conn.fetch(
        SQL["fan_out_batch"],
        broadcast.cursor,
        last,
        marketing,
        broadcast.event_id,
        message_domain,
        *_group_columns(alike),
    )
    added: int = rows[0]["added"]
    alone = [row for row in rows if row["account_id"] is not None]
    planned: list[tuple[str, NoticePlan]] = []
    if alone:
        addresses = {row["email"].lower() for row in alone}
        for row in alone:
            stored = row["preferences"]
            if stored not in decoded:  # changed since the groups were read
                decoded[stored] = Preferences.from_json(json.loads(stored))
            chosen = decoded[stored]
            addresses.update(a.lower() for a in chosen.addresses.get(category.value, ()))
            addresses.update(a.lower() for a in chosen.extra_emails)
        suppressed: frozenset[str] = frozenset()
        if marketing:
            found = await conn.fetch(SQL["suppressed_among"], list(addresses))
            suppressed = frozenset(row["address"] for row in found)
        # Hard-bounced addresses: a mandatory notice goes to the account's other addresses.
        undeliverable = await address_store.undeliverable_among(conn, addresses)
        for n, row in enumerate(alone, 1):
            chosen = decoded[row["preferences"]]
            subscriber = _subscriber(row, row["language"], row["timezone"], chosen)
            planned.extend(
                (row["account_id"], p) for p in route(subscriber, suppressed, undeliverable)
            )
            if n % CHUNK == 0:
                await asyncio.sleep(0)
    for start in range(0, len(planned), CHUNK):
        added += len(
            await notice_store.insert_for_accounts(
                conn, broadcast.event_id, planned[start : start + CHUNK], message_domain
            )
        )
    return await _advance(conn, broadcast, last, added, done=spanned < size)


async def _advance(
    conn: Conn, broadcast: Runnable, last: str | None, added: int, *, done: bool
) -> Batch:
    advanced = await conn.fetchrow(SQL["advance"], broadcast.id, last, added, done)
    assert advanced is not None
    return Batch(state=advanced["state"], queued=int(advanced["queued"]), added=added)


def _group_columns(alike: Sequence[tuple[asyncpg.Record, NoticePlan | None]]) -> list[list[Any]]:
    """The groups routed alike and their plans, as the arrays `fan_out_batch` takes."""
    return [
        [group["language"] for group, _ in alike],
        [group["timezone"] for group, _ in alike],
        [group["preferences"] for group, _ in alike],
        *notice_store.plan_columns([plan for _, plan in alike]),
    ]


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
