"""A fresh preference link asked for on the page of an expired or revoked one: queued as a
notice of its own (rules/links.py plans it), through the usual delivery, unless the account
had enough of them today. The page (http/pages/renewal.py) answers the same either way."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import structlog

from notifyd.rules.links import RENEWAL_KIND, renewal_plan
from notifyd.settings import Settings
from notifyd.storage import links as link_store
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)

# The window [links] renewals_per_account_per_day counts in.
RENEWAL_WINDOW_HOURS = 24


async def renew(pool: asyncpg.Pool, settings: Settings, account_id: str, now: datetime) -> bool:
    """Queue the email with a fresh preference link to the account's address; False (and
    nothing queued) for an unknown account or one past its daily number of them."""
    async with pool.acquire() as conn, conn.transaction():
        # The row lock orders two asks arriving together, so both count what the other queued.
        subscriber = await subscriber_store.get(conn, account_id, lock=True)
        if subscriber is None:
            return False
        recent = await link_store.recent_renewals(
            conn, account_id, RENEWAL_KIND, RENEWAL_WINDOW_HOURS
        )
        if recent >= settings.links.renewals_per_account_per_day:
            log.warning("fresh preference link refused: enough today", account_id=account_id)
            return False
        plan = renewal_plan(subscriber, settings.defaults, now)
        await notice_store.insert_for_accounts(
            conn, None, [(account_id, plan)], settings.message_domain
        )
        await notice_store.wake_workers(conn)
    log.info("fresh preference link queued", account_id=account_id)
    return True
