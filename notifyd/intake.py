"""Ingest: one verified, validated webhook becomes an event row and its notice rows,
committed in one transaction before the sender is answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from notifyd.events import Event
from notifyd.routing import Routing, route, subscriber_after
from notifyd.settings import DefaultsSettings
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store


@dataclass(frozen=True)
class Receipt:
    event_id: UUID
    duplicate: bool
    routing: Routing | None = None


async def ingest(
    pool: asyncpg.Pool,
    *,
    source: str,
    webhook_id: str,
    event: Event,
    defaults: DefaultsSettings,
    message_domain: str,
    now: datetime,
) -> Receipt:
    event_id = uuid4()
    async with pool.acquire() as conn, conn.transaction():
        earlier = await event_store.remember_webhook(conn, source, webhook_id, event_id)
        if earlier is not None:
            return Receipt(event_id=earlier, duplicate=True)
        await event_store.insert_event(conn, event_id, source, webhook_id, event)
        current = await subscriber_store.get(conn, event.account_id)
        subscriber = subscriber_after(event, current)
        if subscriber is not None and subscriber is not current:
            subscriber = await subscriber_store.upsert(conn, subscriber)
        routing = route(event, subscriber, defaults, now)
        await notice_store.insert(conn, event_id, event.account_id, routing.notices, message_domain)
        if any(plan.due_at <= now for plan in routing.notices):
            await notice_store.wake_workers(conn)
    return Receipt(event_id=event_id, duplicate=False, routing=routing)
