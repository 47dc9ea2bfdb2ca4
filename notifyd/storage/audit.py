"""The audit trail (table `audit`): who changed what, when, about which account.

Append only: `record` adds a row, `purge` (the retention job's, query purge_audit) deletes
rows past [audit] keep_days, and nothing else changes it (the table refuses UPDATE). Its
writers: the admin API's middleware for every change (http/admin/recording.py), the
subscriber's pages, the daemon's reload, and the CLI's commands that change data. A row
never holds personal data: `detail` takes only names, numbers, booleans and ids, and
refuses text that could be an address, a phone number or a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from notifyd.storage import db, queries
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)
SQL = queries.load("audit")

# Who made a change that no admin token made.
SUBSCRIBER_LINK = "subscriber link"
CONFIG = "config"
CLI = "cli"
# A relay's report (a spam complaint) posted by the `mta` source: intake/reports.py.
MAIL_REPORT = "mail report"

# A value of `detail`: a field's name, an action, a uuid, a count. No '@', '+', space or
# other punctuation, so that no address, phone number in international form, name with a
# space or free text passes, even by mistake.
_PLAIN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
Detail = Mapping[str, "str | int | bool | Sequence[str] | None"]


def consent_action(granted: bool) -> str:
    """The action of a marketing consent choice, whoever recorded it."""
    return "consent.granted" if granted else "consent.withdrawn"


def _plain(key: str, value: object) -> object:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str) and _PLAIN.fullmatch(value):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [_plain(key, v) for v in value]
    raise ValueError(f"audit detail {key!r} is not a name, number or id: refused")


def checked(detail: Detail) -> dict[str, Any]:
    """`detail` as stored; ValueError when a key or a value could carry personal data."""
    return {str(_plain("key", key)): _plain(key, value) for key, value in detail.items()}


async def record(
    conn: Conn,
    actor: str,
    action: str,
    account_id: str | None = None,
    detail: Detail | None = None,
) -> None:
    await conn.execute(SQL["record_audit"], actor, action, account_id, checked(detail or {}))


async def record_apart(
    pool: asyncpg.Pool,
    actor: str,
    action: str,
    account_id: str | None = None,
    detail: Detail | None = None,
) -> bool:
    """`record` on a connection of its own, for a change already committed (or made outside
    the database: a reload). A database that cannot answer is logged, not raised: the change
    stands, and its caller's answer must say so. False when the row was not written."""
    checked(detail or {})  # a mistake in the caller still fails loudly
    try:
        async with pool.acquire() as conn:
            await record(conn, actor, action, account_id, detail)
    except db.UNAVAILABLE as error:
        log.error(
            "audit row not written",
            actor=actor,
            action=action,
            account_id=account_id,
            error=type(error).__name__,
        )
        return False
    return True


async def page(
    conn: Conn,
    limit: int,
    *,
    account_id: str | None = None,
    action: str | None = None,
    before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Newest first, at most `limit`; only those of `account_id`, of `action`, before
    `before` when given."""
    rows = await conn.fetch(SQL["audit_page"], account_id, action, before, limit)
    return [dict(row) for row in rows]


async def purge(conn: Conn, cut_off: datetime, batch_size: int) -> int:
    """Delete at most `batch_size` rows older than `cut_off` (one short transaction: call
    again until it returns less than `batch_size`); how many were deleted."""
    status: str = await conn.execute(SQL["purge_audit"], cut_off, batch_size)
    return int(status.split()[-1])
