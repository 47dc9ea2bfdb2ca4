"""Restriction of processing (SPEC §2, issue 18): an account's flag set or lifted, its
waiting notices held or released in the same transaction.

While the flag is set the account's events are still stored and routed, but every notice
outside the mandatory categories is held in the state 'restricted': neither sent nor
cancelled. Lifting releases what is still within its category's delivery lifetime and
cancels, saying so, what is past it.

Neighbours: the admin API (http/admin/restriction.py) and the CLI (`notifyd privacy
restrict|lift`) call this; storage/subscribers.py keeps the flag, storage/notices.py holds
and releases the notices; parts.sql's `withholding` holds the new ones as they are queued
or claimed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from notifyd.catalogue.events import MANDATORY_CATEGORIES, Category
from notifyd.settings import DeliverySettings
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage import waiting
from notifyd.storage.db import Conn

_MANDATORY = sorted(c.value for c in MANDATORY_CATEGORIES)


@dataclass(frozen=True)
class Restriction:
    """An account's restriction after a change, and what the change did to its notices."""

    account_id: str
    # Since when it is restricted; None: not restricted.
    restricted_at: datetime | None
    held: int = 0
    released: int = 0
    cancelled: int = 0


async def restrict(conn: Conn, account_id: str) -> Restriction | None:
    """Restrict the account (kept from when it was first set, if it already is) and hold
    its waiting notices; None when there is no such subscriber."""
    async with conn.transaction():
        # The subscriber's row is locked first, as a wave of webhooks locks it: a wave
        # committed before this sees its notices held here, one after it reads the flag.
        try:
            since = await subscriber_store.set_restriction(conn, account_id, True)
        except KeyError:
            return None
        held = await waiting.restrict_waiting(conn, account_id, _MANDATORY)
    return Restriction(account_id, since, held=held)


async def lift(conn: Conn, account_id: str, delivery: DeliverySettings) -> Restriction | None:
    """Lift the account's restriction: its held notices within their delivery lifetime
    wait again as before, the others are cancelled; None when there is no such
    subscriber. Lifting an account that is not restricted changes nothing."""
    lifetimes = {category.value: delivery.lifetime(category.value) for category in Category}
    async with conn.transaction():
        try:
            await subscriber_store.set_restriction(conn, account_id, False)
        except KeyError:
            return None
        released, cancelled = await waiting.release_restricted(
            conn, account_id, lifetimes, delivery.retry_lifetime_seconds
        )
        if released:
            await notice_store.wake_workers(conn)
    return Restriction(account_id, None, released=released, cancelled=cancelled)
