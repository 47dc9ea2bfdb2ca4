"""Periodic work, the only APScheduler import. Jobs that must run once across hosts take a
PostgreSQL advisory lock; every job is idempotent, so running late or twice is harmless.

The jobs: digests (every 20 s), the monthly credit statements (looked at every minute:
rules/statements.py, storage/statements.py) and retention (daily, storage/retention.py's
purge steps).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from notifyd.catalogue.events import Category
from notifyd.metrics import Metrics
from notifyd.model import NoticePlan
from notifyd.rules import statements
from notifyd.rules.preferences import addresses_for, mode_for
from notifyd.rules.thresholds import days_left
from notifyd.settings import Settings
from notifyd.storage import credit as credit_store
from notifyd.storage import db
from notifyd.storage import notices as notice_store
from notifyd.storage import retention as retention_store
from notifyd.storage import statements as statement_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)

# Advisory lock keys, one per job that must not run on two hosts at once (...01 and ...02
# were the hourly purges of webhook ids and files, now retention steps).
DIGESTS_LOCK = 0x6E6F746903
RETENTION_LOCK = 0x6E6F746904
STATEMENTS_LOCK = 0x6E6F746905
# Statements go out at subscribers' local times; a minute's delay is nothing for a monthly
# email, and the first look (at start) sends those that fell due while no daemon ran.
STATEMENTS_CHECK = timedelta(minutes=1)
# Whether the daily retention run is due is looked at this often, and this soon after start
# (so that a run missed while the daemon was down is made then).
RETENTION_CHECK = timedelta(hours=1)
RETENTION_FIRST_CHECK = timedelta(seconds=30)
# Digest periods gathered per transaction: whole periods, so a batch never splits one.
DIGEST_GROUPS_PER_BATCH = 1000


async def run_exclusive(
    pool: asyncpg.Pool, key: int, job: Callable[[Conn], Awaitable[None]]
) -> bool:
    """Run `job` if no other host holds `key`; False when skipped."""
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
            return False
        try:
            await job(conn)
        finally:
            try:
                await conn.execute("SELECT pg_advisory_unlock($1)", key)
            except BaseException:
                # The pool does not reset sessions: a connection still holding the lock
                # must not go back to it (closing it releases the lock).
                conn.terminate()
                raise
    return True


async def flush_digests(
    pool: asyncpg.Pool, now: datetime, message_domain: str, on_queued: Callable[[], None]
) -> tuple[int, int] | None:
    """Queue every digest due at `now` (batch after batch), once across hosts: (digests,
    notices told), or None when another host is doing it."""
    total = [0, 0]

    async def flush(conn: Conn) -> None:
        while True:
            async with conn.transaction():
                digests, items = await notice_store.flush_digests(
                    conn, now, DIGEST_GROUPS_PER_BATCH, message_domain
                )
                if digests:
                    await notice_store.wake_workers(conn)
            total[0] += digests
            total[1] += items
            if digests:
                on_queued()
            if digests < DIGEST_GROUPS_PER_BATCH:
                return

    if not await run_exclusive(pool, DIGESTS_LOCK, flush):
        return None
    if total[0]:
        log.info("digests queued", digests=total[0], notices=total[1])
    return total[0], total[1]


async def queue_statements(
    pool: asyncpg.Pool, settings: Settings, now: datetime, on_queued: Callable[[], None]
) -> int | None:
    """Queue every monthly credit statement due at `now`, once across hosts (the lock, and
    each period marked told in the transaction that queues it): how many, or None when
    another host is doing it."""
    queued = [0]

    async def run(conn: Conn) -> None:
        config = settings.statements
        through = statements.last_due(now, config.day_of_month, config.time)
        for period in await statement_store.unsent(conn, through):
            async with conn.transaction():
                queued[0] += await _statement(conn, settings, now, period)
        if queued[0]:
            await notice_store.wake_workers(conn)
            on_queued()

    if not await run_exclusive(pool, STATEMENTS_LOCK, run):
        return None
    if queued[0]:
        log.info("statements queued", notices=queued[0])
    return queued[0]


async def _statement(
    conn: Conn, settings: Settings, now: datetime, unsent: statement_store.Unsent
) -> int:
    """One account's statement of one period, if due: the notices queued (one per address)."""
    subscriber, defaults = unsent.subscriber, settings.defaults
    zone = subscriber.timezone or defaults.timezone
    config = settings.statements
    if now < statements.send_point(unsent.period, zone, config.day_of_month, config.time):
        return 0
    if subscriber.restricted_at is not None:
        return 0  # neither sent nor passed over: it goes once the restriction is lifted
    if not await statement_store.mark_told(conn, unsent.account_id, unsent.period, now):
        return 0
    wanted = mode_for(Category.STATEMENT, subscriber.preferences, defaults) != "off"
    if subscriber.closed_at is not None or not wanted:
        return 0  # passed over: the record stops here (the next event adds nothing)
    left = {}
    for row in unsent.rows:
        currency = str(row["currency"])
        closing = row["closing"] if row["closing"] is not None else row["opening"]
        history = await credit_store.recent(
            conn, unsent.account_id, currency, now - credit_store.SPENDING_WINDOW
        )
        left[currency] = None if closing is None else days_left(history, closing, now)
    plan = NoticePlan(
        kind=statements.STATEMENT_KIND,
        category=Category.STATEMENT,
        recipient="",
        language=subscriber.language or defaults.language,
        timezone=zone,
        # Due at once, on the real clock (as a digest's now()): `now` decides only whether
        # the period's statement is due.
        due_at=datetime.now(UTC),
        reasons=(f"monthly credit statement of {unsent.period:%Y-%m}",),
        context=statements.content(unsent.period, unsent.rows, left),
        dedupe_key=f"statement:{unsent.period:%Y-%m}",
    )
    addresses = addresses_for(Category.STATEMENT, subscriber.preferences, subscriber.email)
    ids = await notice_store.insert_for_accounts(
        conn,
        None,
        [(unsent.account_id, replace(plan, recipient=address)) for address in addresses],
        settings.message_domain,
    )
    following = statements.next_period(unsent.period)
    await statement_store.carry_forward(conn, unsent.account_id, unsent.period, following)
    return len(ids)


async def purge_expired(
    pool: asyncpg.Pool,
    settings: Settings,
    now: datetime,
    *,
    force: bool = False,
    metrics: Metrics | None = None,
) -> retention_store.Outcome | None:
    """The retention run, on one host at a time, when due (at the configured hour, or at
    once when that was missed) or `force`d; None when another host holds it or it is not
    due. Counts per data class go to the log and the metrics, never what was removed."""
    done: list[retention_store.Outcome] = []

    def counted(name: str, rows: int) -> None:
        if metrics is not None and rows:
            metrics.retention_purged.labels(name).inc(rows)

    async def purge(conn: Conn) -> None:
        # Looked at under the lock: a host that waited for another's run finds it made.
        hour = settings.retention.daily_at_hour
        if not force and not await retention_store.due(conn, now, hour):
            return
        started = datetime.now(UTC)
        outcome = await retention_store.run(conn, settings, now, on_batch=counted)
        await retention_store.record(conn, now, outcome.counts)
        took = (datetime.now(UTC) - started).total_seconds()
        log.info("retention purged", **outcome.counts, batches=outcome.batches, seconds=took)
        if metrics is not None:
            metrics.retention_last_run.set(now.timestamp())
        done.append(outcome)

    await run_exclusive(pool, RETENTION_LOCK, purge)
    return done[0] if done else None


class Jobs:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Callable[[], Settings],
        *,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.on_queued = on_queued
        self.clock = clock
        self.metrics = metrics
        self.scheduler = AsyncIOScheduler(
            # Late runs are not skipped (APScheduler's default grace is 1 s): a job missed
            # while the daemon was down or busy runs once when it can, not never.
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )

    def start(self) -> None:
        # Daily, but looked at hourly and soon after start: the run is made when due, on
        # whichever host looks first, and one missed while no daemon was up is made now.
        self.scheduler.add_job(
            self.retention,
            "interval",
            seconds=RETENTION_CHECK.total_seconds(),
            id="retention",
            next_run_time=datetime.now(UTC) + RETENTION_FIRST_CHECK,
        )
        # Digests go out at whole hours and at subscribers' daily times; checking every 20 s
        # sends them within seconds of their time, and the first run (at start) sends any
        # that fell due while the daemon was down.
        self.scheduler.add_job(
            self.digests,
            "interval",
            seconds=20,
            id="digests",
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            self.monthly_statements,
            "interval",
            seconds=STATEMENTS_CHECK.total_seconds(),
            id="statements",
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def digests(self) -> None:
        try:
            await flush_digests(
                self.pool, self.clock(), self.settings().message_domain, self.on_queued
            )
        except db.UNAVAILABLE as error:
            log.warning("digests postponed: database unavailable", error=type(error).__name__)

    async def monthly_statements(self) -> None:
        try:
            await queue_statements(self.pool, self.settings(), self.clock(), self.on_queued)
        except db.UNAVAILABLE as error:
            log.warning("statements postponed: database unavailable", error=type(error).__name__)

    async def retention(self) -> None:
        try:
            await purge_expired(self.pool, self.settings(), self.clock(), metrics=self.metrics)
        except db.UNAVAILABLE as error:
            log.warning("retention postponed: database unavailable", error=type(error).__name__)
