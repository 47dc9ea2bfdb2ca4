"""Consent history and the suppression list (tables `consent_events`, `suppressions`).
Neighbour: notices.py, whose waiting marketing notices to an address suppressed here are
cancelled with it, whichever account they are of."""

from __future__ import annotations

from typing import Any

from notifyd.storage import queries, waiting
from notifyd.storage.db import Conn

SQL = queries.load("consent")
MARKETING = "marketing"


async def record(
    conn: Conn,
    account_id: str,
    *,
    granted: bool,
    source: str,
    wording_version: str,
    recorded_by: str | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        SQL["record_consent"], account_id, MARKETING, granted, source, wording_version, recorded_by
    )
    assert row is not None  # INSERT ... RETURNING
    return dict(row)


async def history(conn: Conn, account_id: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(SQL["consent_history"], account_id)]


async def has_consent(conn: Conn, account_id: str) -> bool:
    granted: bool | None = await conn.fetchval(SQL["current_consent"], account_id, MARKETING)
    return bool(granted)


async def suppress(conn: Conn, address: str, reason: str) -> None:
    """Put the address on the marketing suppression list, and cancel every marketing notice
    to it not sent yet, of any account (SPEC §2: an unsubscribe acts at once; the claim
    would withhold them anyway, but only as each comes due)."""
    await conn.execute(SQL["suppress"], address, MARKETING, reason)
    await waiting.cancel_waiting_to(conn, [address], [MARKETING], waiting.UNSUBSCRIBED)


async def lift(conn: Conn, address: str) -> None:
    await conn.execute(SQL["lift_suppression"], address, MARKETING)


async def is_suppressed(conn: Conn, address: str) -> bool:
    found: bool = await conn.fetchval(SQL["is_suppressed"], address, MARKETING)
    return found
