"""Subscribers (table `subscribers`)."""

from __future__ import annotations

import asyncpg

from notifyd.routing import Subscriber
from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("subscribers")


def _subscriber(row: asyncpg.Record) -> Subscriber:
    return Subscriber(
        account_id=row["account_id"],
        email=row["email"],
        name=row["name"],
        username=row["username"],
        language=row["language"],
        timezone=row["timezone"],
        closed_at=row["closed_at"],
    )


async def get(conn: Conn, account_id: str) -> Subscriber | None:
    row = await conn.fetchrow(SQL["get_subscriber"], account_id)
    return None if row is None else _subscriber(row)


async def upsert(conn: Conn, subscriber: Subscriber) -> Subscriber:
    row = await conn.fetchrow(
        SQL["upsert_subscriber"],
        subscriber.account_id,
        subscriber.email,
        subscriber.name,
        subscriber.username,
        subscriber.language,
        subscriber.timezone,
    )
    assert row is not None
    return _subscriber(row)
