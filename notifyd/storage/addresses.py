"""Address health (table `address_health`): hard bounces and undeliverable addresses, and
the soft bounces the relay's reports count (intake/reports.py).
Neighbour: notices.py, whose waiting notices to an address marked undeliverable here are
cancelled with it (but the mandatory categories'), whichever account they are of."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from notifyd.catalogue.events import CONFIGURABLE_CATEGORIES
from notifyd.storage import queries, waiting
from notifyd.storage.db import Conn

SQL = queries.load("addresses")
# What an undeliverable address no longer gets: all but the mandatory categories, which
# the delivery reroutes to the account's other addresses instead (delivery/outcomes.py).
OPTIONAL = sorted(CONFIGURABLE_CATEGORIES)


async def record_bounce(
    conn: Conn, address: str, reply: str, limit: int, *, reported: bool = False
) -> tuple[int, bool]:
    """(hard bounces so far, undeliverable now). Undeliverable: every notice to it not sent
    yet, of any account, is cancelled but the mandatory ones (they would bounce too; the
    claim would withhold them as each comes due). `reported`: a report after the relay
    accepted the message counted it (the relay's next 250 then clears nothing)."""
    async with conn.transaction():  # the mark and what it cancels, together
        row = await conn.fetchrow(SQL["record_bounce"], address, reply, limit, reported)
        assert row is not None
        undeliverable = bool(row["undeliverable"])
        if undeliverable:
            await waiting.cancel_waiting_to(conn, [address], OPTIONAL, waiting.UNDELIVERABLE)
    return int(row["hard_bounces"]), undeliverable


async def record_soft_bounce(conn: Conn, address: str, notice_id: UUID, status: str) -> int | None:
    """One more soft bounce (a delay, a 4.x.x report about the notice); how many so far.
    None: this notice's soft bounce of this status was counted already (a report posted
    again)."""
    count: int | None = await conn.fetchval(SQL["record_soft_bounce"], address, notice_id, status)
    return count


async def forgive_bounces(conn: Conn, addresses: Iterable[str], limit: int) -> None:
    await conn.execute(SQL["forgive_bounces"], sorted({a.lower() for a in addresses}), limit)


async def undeliverable_among(conn: Conn, addresses: Iterable[str]) -> frozenset[str]:
    wanted = sorted({a.lower() for a in addresses})
    if not wanted:
        return frozenset()
    rows = await conn.fetch(SQL["undeliverable_among"], wanted)
    return frozenset(row["address"] for row in rows)


async def list_undeliverable(conn: Conn, limit: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(SQL["list_undeliverable"], limit)]


async def clear(conn: Conn, address: str) -> bool:
    status: str = await conn.execute(SQL["clear"], address)
    return status.endswith(" 1")
