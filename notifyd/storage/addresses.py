"""Address health (table `address_health`): hard bounces and undeliverable addresses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("addresses")


async def record_bounce(conn: Conn, address: str, reply: str, limit: int) -> tuple[int, bool]:
    """(hard bounces so far, undeliverable now)."""
    row = await conn.fetchrow(SQL["record_bounce"], address, reply, limit)
    assert row is not None
    return int(row["hard_bounces"]), bool(row["undeliverable"])


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
