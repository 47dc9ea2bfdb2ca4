"""Subscribers (table `subscribers`): their details, preferences and restriction of
processing. Neighbour: notices.py, whose waiting notices a category switched off cancels."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from notifyd.model import Preferences, Subscriber
from notifyd.storage import notices, queries
from notifyd.storage.db import Conn

SQL = queries.load("subscribers")


def subscriber_of(row: asyncpg.Record | Mapping[str, Any]) -> Subscriber:
    """The subscriber of a row of its columns."""
    fields = dict(row)
    fields["preferences"] = Preferences.from_json(fields.get("preferences"))
    return Subscriber(**fields)


async def get(conn: Conn, account_id: str, *, lock: bool = False) -> Subscriber | None:
    row = await conn.fetchrow(SQL["lock_subscriber" if lock else "get_subscriber"], account_id)
    return None if row is None else subscriber_of(row)


async def upsert(conn: Conn, subscriber: Subscriber) -> Subscriber:
    """Create the subscriber or update it (details left None keep their value; reopens it)."""
    return await _save_details(conn, "upsert_subscriber", subscriber)


async def replace(conn: Conn, subscriber: Subscriber) -> Subscriber:
    """Create the subscriber or set its details to these (None clears one)."""
    return await _save_details(conn, "replace_subscriber", subscriber)


async def _save_details(conn: Conn, query: str, subscriber: Subscriber) -> Subscriber:
    row = await conn.fetchrow(
        SQL[query],
        subscriber.account_id,
        subscriber.email,
        subscriber.name,
        subscriber.username,
        subscriber.language,
        subscriber.timezone,
    )
    assert row is not None
    return subscriber_of(row)


async def update(conn: Conn, subscriber: Subscriber) -> Subscriber:
    row = await conn.fetchrow(
        SQL["update_subscriber"],
        subscriber.account_id,
        subscriber.email,
        subscriber.name,
        subscriber.language,
        subscriber.timezone,
        subscriber.closed_at,
    )
    assert row is not None
    return subscriber_of(row)


async def save_preferences(conn: Conn, subscriber: Subscriber) -> Subscriber:
    """Store the choices; every notice of a category now off that is not sent yet is
    cancelled with them (SPEC §2: whatever it waits for)."""
    off = [category for category, mode in subscriber.preferences.modes.items() if mode == "off"]
    if off:
        await notices.cancel_waiting(
            conn,
            subscriber.account_id,
            off,
            "cancelled: the subscriber turned {category} notices off",
        )
    row = await conn.fetchrow(
        SQL["save_preferences"],
        subscriber.account_id,
        subscriber.preferences.to_json(),
        subscriber.voicemail_audio,
        subscriber.low_credit_threshold,
        subscriber.language,
        subscriber.timezone,
    )
    assert row is not None
    return subscriber_of(row)


async def set_restriction(conn: Conn, account_id: str, restricted: bool) -> datetime | None:
    """Restrict the account's processing or lift it: since when it is restricted now (None
    when lifted). KeyError when there is no such subscriber."""
    rows = await conn.fetch(SQL["set_restriction"], account_id, restricted)
    if not rows:
        raise KeyError(account_id)
    since: datetime | None = rows[0]["restricted_at"]
    return since
