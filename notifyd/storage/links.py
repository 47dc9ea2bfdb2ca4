"""The state of an account's links kept on its subscriber row (column
`subscribers.links_revoked_at`, migration 0014), and the count of fresh links recently sent
(table `notices`). The tokens themselves are sealed, not stored (notifyd/links.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import structlog

from notifyd.links import KEY_FILE, link_secret
from notifyd.storage import queries
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)

SQL = queries.load("links")


@dataclass(frozen=True)
class Revocation:
    """The account exists; its preference links made before `since` (if any) are revoked."""

    since: datetime | None


async def revoke(conn: Conn, account_id: str, now: datetime) -> datetime | None:
    """Revoke the account's preference links made before `now`; None: no such account."""
    revoked: datetime | None = await conn.fetchval(SQL["revoke_links"], account_id, now)
    return revoked


async def revocation(conn: Conn, account_id: str) -> Revocation | None:
    """None: no such account."""
    row = await conn.fetchrow(SQL["links_revoked_at"], account_id)
    return None if row is None else Revocation(row["links_revoked_at"])


async def recent_renewals(conn: Conn, account_id: str, kind: str, hours: int) -> int:
    count: int = await conn.fetchval(SQL["recent_renewals"], account_id, kind, hours)
    return count


async def link_keys(
    pool: asyncpg.Pool, configured: Sequence[str], state_dir: Path
) -> tuple[str, ...]:
    """The configured link keys, or the state folder's. A key generated now for a database
    that already sent emails means the key file was lost: said loudly, since none of the
    links already sent will open (docs/admin-api.md, "The link keys")."""
    generated = not configured and not (state_dir / KEY_FILE).exists()
    keys = link_secret(configured, state_dir)
    if generated:
        async with pool.acquire() as conn:
            sent = await conn.fetchval(SQL["any_sent"])
        if sent:
            log.warning(
                "link key generated anew for a database that sent emails: the links already "
                "sent will not open; restore state_dir/link-secret from a backup, or "
                "configure [daemon] link_secret",
                key_file=str(state_dir / KEY_FILE),
            )
    return keys
