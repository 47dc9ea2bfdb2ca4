"""Received events and remembered webhook ids (tables `events`, `webhook_receipts`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("events")


async def find_receipt(conn: Conn, source: str, webhook_id: str) -> UUID:
    """The event stored for a webhook id already known."""
    earlier: UUID = await conn.fetchval(SQL["find_receipt"], source, webhook_id)
    return earlier


async def decision(conn: Conn, event_id: UUID) -> dict[str, Any] | None:
    """An event with what was decided for it (`decided`); None if unknown."""
    row = await conn.fetchrow(SQL["event_decision"], event_id)
    return None if row is None else decided(dict(row))


async def of_account(
    conn: Conn,
    account_id: str,
    limit: int,
    before: datetime | None = None,
    *,
    before_id: UUID | None = None,
    nothing_queued: bool = False,
) -> list[dict[str, Any]]:
    """An account's events, newest first, each with what was decided for it; with
    `before_id`, also those received at `before` that come after that event in the order;
    with `nothing_queued`, only those that queued no notice."""
    rows = await conn.fetch(
        SQL["events_of_account"], account_id, limit, before, nothing_queued, before_id
    )
    return [decided(dict(row)) for row in rows]


def decided(event: dict[str, Any]) -> dict[str, Any]:
    """The event with `decision` as the admin reads it: {"outcome", "code", "reason"}.

    A stored decision says why the event queued nothing. Without one, an event that queued
    notices was routed to them (each notice says why); one that queued none was routed by a
    host older than migration 0009, which kept no decision.
    """
    stored = event.pop("decision")
    if stored is not None:
        event["decision"] = {"outcome": "nothing_queued", **stored}
    elif event["notices"]:
        event["decision"] = {"outcome": "queued", "code": "queued", "reason": None}
    else:
        event["decision"] = {
            "outcome": "not_recorded",
            "code": "not_recorded",
            "reason": "no decision recorded: routed before decisions were stored (0009)",
        }
    return event
