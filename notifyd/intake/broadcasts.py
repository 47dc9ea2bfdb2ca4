"""Fan-out of broadcasts in the background: batch after batch, each in its own transaction,
each account routed by `rules.routing.route_broadcast`.

Webhooks keep their connections and their speed: a batch is one INSERT ... SELECT of
`batch_size` rows, and the loop yields between batches. A restart resumes from the cursor;
several hosts share the work (`FOR UPDATE SKIP LOCKED` on the broadcast row, per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg
import structlog

from notifyd.catalogue.events import Category
from notifyd.model import NoticePlan, Preferences, Subscriber
from notifyd.rules.routing import route_broadcast
from notifyd.settings import DefaultsSettings, Settings
from notifyd.storage import addresses as address_store
from notifyd.storage import broadcasts as broadcast_store
from notifyd.storage import db
from notifyd.storage import notices as notice_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)
# Subscribers routed between two turns of the event loop.
CHUNK = 200


class Broadcaster:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Callable[[], Settings],
        message_domain: Callable[[], str],
        on_queued: Callable[[], None],
        poll_seconds: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.clock = clock
        self.pool = pool
        self.settings = settings
        self.message_domain = message_domain
        self.on_queued = on_queued
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="notifyd-broadcasts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)

    async def run_batch(self) -> bool:
        """Fan out one batch of some runnable broadcast; False when there was none."""
        settings = self.settings()
        async with self.pool.acquire() as conn, conn.transaction():
            broadcast = await broadcast_store.next_runnable(conn)
            if broadcast is None:
                return False
            batch = await fan_out_batch(
                conn,
                broadcast,
                size=settings.broadcasts.batch_size,
                defaults=settings.defaults,
                message_domain=self.message_domain(),
                now=self.clock(),
            )
        if batch.added:
            # Other hosts' workers are woken after the commit, not by it: a NOTIFY takes a
            # lock that every notifying commit waits for, and this batch's commit flushes
            # megabytes of WAL; webhooks queueing a notice due now waited behind it (their
            # COMMIT in Lock:object, sampled from pg_stat_activity during bench/fanout.py).
            async with self.pool.acquire() as conn:
                await notice_store.wake_workers(conn)
            self.on_queued()
        if batch.state == "done":
            log.info("broadcast queued", broadcast_id=str(broadcast.id), notices=batch.queued)
        return True

    async def _loop(self) -> None:
        while True:
            try:
                # Not a poll: the sleep(0) yields so webhooks are served between batches.
                while await self.run_batch():  # noqa: ASYNC110
                    await asyncio.sleep(0)
            except db.UNAVAILABLE as error:
                log.warning("broadcast fan-out paused", error=type(error).__name__)
            except Exception:
                # A bug must not end the fan-out for good: log it and try again later.
                log.exception("broadcast fan-out failed; retrying after a pause")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()


async def fan_out_batch(
    conn: Conn,
    broadcast: broadcast_store.Runnable,
    *,
    size: int,
    defaults: DefaultsSettings,
    message_domain: str,
    now: datetime,
) -> broadcast_store.Batch:
    """Queue the next `size` accounts' notices and move the cursor, in the caller's
    transaction. The dedupe key makes a replayed batch add nothing."""
    marketing = broadcast.kind == "marketing.offer"
    category = Category.MARKETING if marketing else Category.SERVICE
    reasons = (
        ("category marketing", "offer to subscribers with consent, not unsubscribed")
        if marketing
        else ("category service (mandatory)", "broadcast to every open account")
    )
    groups, last, spanned = await broadcast_store.fan_out_groups(
        conn, broadcast.cursor, size, marketing
    )
    if not groups:  # nothing left, or only closed (or, for an offer, unwilling) accounts
        return await broadcast_store.advance(conn, broadcast, last, 0, done=spanned < size)
    # Each distinct preferences text decoded once, for the routes and the lookups.
    decoded = {
        g["preferences"]: Preferences.from_json(json.loads(g["preferences"])) for g in groups
    }

    def route(
        subscriber: Subscriber,
        suppressed: frozenset[str] = frozenset(),
        undeliverable: frozenset[str] = frozenset(),
    ) -> tuple[NoticePlan, ...]:
        return route_broadcast(
            broadcast.kind,
            category,
            subscriber,
            defaults,
            now,
            dedupe_key=f"broadcast:{broadcast.id}",
            reasons=reasons,
            suppressed=suppressed,
            undeliverable=undeliverable,
        )

    # Most accounts share their language, zone and preferences: each such group is routed
    # once (as if nothing were suppressed or undeliverable: PostgreSQL checks those per row)
    # and queued by PostgreSQL, each notice to the account's own address. Only the accounts
    # routing must see one by one come back: every row through the event loop and back held
    # the webhooks, and the fan-out waited for both trips.
    alike: list[tuple[asyncpg.Record, NoticePlan | None]] = []
    for group in groups:
        preferences = decoded[group["preferences"]]
        if preferences.addresses or preferences.extra_emails:
            continue  # its own addresses: routed one by one
        shared = route(_subscriber(group, preferences))
        alike.append((group, shared[0] if shared else None))
    added, alone = await broadcast_store.queue_groups(
        conn, broadcast, last, marketing, message_domain, alike
    )
    planned = await _one_by_one(conn, alone, decoded, category, route) if alone else []
    for start in range(0, len(planned), CHUNK):
        added += len(
            await notice_store.insert_for_accounts(
                conn, broadcast.event_id, planned[start : start + CHUNK], message_domain
            )
        )
    return await broadcast_store.advance(conn, broadcast, last, added, done=spanned < size)


async def _one_by_one(
    conn: Conn,
    alone: Sequence[asyncpg.Record],
    decoded: dict[str, Preferences],
    category: Category,
    route: Callable[[Subscriber, frozenset[str], frozenset[str]], tuple[NoticePlan, ...]],
) -> list[tuple[str, NoticePlan]]:
    """The accounts with addresses of their own, routed each against the suppressed (an
    offer) and undeliverable ones among all the batch's addresses, looked up at once."""
    addresses = {row["email"].lower() for row in alone}
    for row in alone:
        stored = row["preferences"]
        if stored not in decoded:  # changed since the groups were read
            decoded[stored] = Preferences.from_json(json.loads(stored))
        chosen = decoded[stored]
        addresses.update(a.lower() for a in chosen.addresses.get(category.value, ()))
        addresses.update(a.lower() for a in chosen.extra_emails)
    suppressed: frozenset[str] = frozenset()
    if category is Category.MARKETING:
        suppressed = await broadcast_store.suppressed_among(conn, list(addresses))
    # Hard-bounced addresses: a mandatory notice goes to the account's other addresses.
    undeliverable = await address_store.undeliverable_among(conn, addresses)
    planned: list[tuple[str, NoticePlan]] = []
    for n, row in enumerate(alone, 1):
        subscriber = _subscriber(row, decoded[row["preferences"]])
        planned.extend((row["account_id"], p) for p in route(subscriber, suppressed, undeliverable))
        if n % CHUNK == 0:
            await asyncio.sleep(0)
    return planned


def _subscriber(row: asyncpg.Record, preferences: Preferences) -> Subscriber:
    return Subscriber(
        account_id=row["account_id"],
        email=row["email"],
        language=row["language"],
        timezone=row["timezone"],
        preferences=preferences,
    )
