"""Retention (SPEC §2): what goes when, as a list of purge steps over every table, and the
record of the daily runs (table `job_runs`).

A step is a named query of the table's own family (storage/sql/<family>.sql) that deletes
or clears one batch of rows past their time: a DELETE or UPDATE (its status counts the
rows) of at most `batch` rows, found with FOR UPDATE SKIP LOCKED so that it never waits for
a row another transaction holds (that row goes at the next run). Nor for a row its DELETE
changes through a foreign key: a notices batch locks the notices its digests told, without
waiting, and leaves a digest one of whose is held (sql/parts.sql purge_notice_batch). `run`
repeats a step, one short transaction a batch, until a batch removes nothing (not merely
fewer than `batch`: rows left for a later run make a batch short while more are due), then
goes to the next step.

A new data class is one more `Step` in `STEPS`: its name (the log's and the metric's
label), the query, and the query's arguments from the settings and the run's time.

Neighbours: jobs.py runs `run` once a day on one host (`due`, `record`); docs/privacy.md
tells the operator what each step removes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from notifyd.catalogue.events import CATALOGUE, Category
from notifyd.settings import Settings
from notifyd.storage import queries
from notifyd.storage.credit import HISTORY_KEPT
from notifyd.storage.db import Conn
from notifyd.storage.statements import KEPT as STATEMENTS_KEPT

log = structlog.get_logger(__name__)
SQL = queries.load("job_runs")

JOB = "retention"
# A batch that waits this long for a lock (a foreign key's action on a row someone holds)
# gives up: the step stops until the next run rather than hold its own rows meanwhile.
LOCK_TIMEOUT = "2s"

BILLING_CATEGORIES = [Category.BILLING.value]
OTHER_CATEGORIES = [c.value for c in Category if c is not Category.BILLING]
BILLING_TYPES = sorted(t for t, model in CATALOGUE.items() if model.category is Category.BILLING)
OTHER_TYPES = sorted(t for t, model in CATALOGUE.items() if model.category is not Category.BILLING)

Arguments = Callable[[Settings, datetime, int], tuple[Any, ...]]


@dataclass(frozen=True)
class Step:
    name: str  # the data class: a log key and the metric's `class` label
    family: str  # storage/sql/<family>.sql
    query: str  # a named query in it
    # Its arguments, from the settings, the run's time and the batch size.
    arguments: Arguments


def _days(days: int) -> timedelta:
    return timedelta(days=days)


def _before(days: Callable[[Settings], int], *also: object) -> Arguments:
    """The usual arguments: the batch size, the cut-off (`days` before the run), `also`."""
    return lambda settings, now, batch: (batch, now - _days(days(settings)), *also)


# In order: notices before their events (an event goes once it has no notice left), a closed
# account's notices and events before its subscriber row.
STEPS: tuple[Step, ...] = (
    Step("attachment_bytes", "attachments", "purge_bytes", lambda s, now, batch: (batch, now)),
    Step(
        "payload_free_text",
        "events",
        "strip_free_text",
        _before(lambda s: s.retention.payload_days),
    ),
    Step(
        "notices",
        "notices",
        "purge_notices",
        _before(lambda s: s.retention.notice_days, OTHER_CATEGORIES),
    ),
    Step(
        "billing_notices",
        "notices",
        "purge_notices",
        _before(lambda s: s.retention.billing_days, BILLING_CATEGORIES),
    ),
    Step(
        "closed_account_notices",
        "notices",
        "purge_closed_notices",
        _before(lambda s: s.retention.closed_account_days, OTHER_CATEGORIES),
    ),
    Step(
        "events",
        "events",
        "purge_events",
        _before(lambda s: s.retention.notice_days, OTHER_TYPES),
    ),
    Step(
        "billing_events",
        "events",
        "purge_events",
        _before(lambda s: s.retention.billing_days, BILLING_TYPES),
    ),
    Step(
        "closed_account_events",
        "events",
        "purge_closed_events",
        _before(lambda s: s.retention.closed_account_days, OTHER_TYPES),
    ),
    Step(
        "closed_accounts",
        "subscribers",
        "purge_closed_accounts",
        _before(lambda s: s.retention.closed_account_days, OTHER_CATEGORIES, OTHER_TYPES),
    ),
    Step(
        "bounce_records", "addresses", "purge_bounces", _before(lambda s: s.retention.notice_days)
    ),
    # Also with their notice (ON DELETE CASCADE); a finished one is of no use past this.
    Step("callbacks", "callbacks", "purge_callbacks", _before(lambda s: s.retention.notice_days)),
    Step("webhook_ids", "events", "purge_receipts", _before(lambda s: s.webhooks.idempotency_days)),
    Step(
        "balance_history",
        "credit",
        "purge_history",
        lambda s, now, batch: (batch, now - HISTORY_KEPT),
    ),
    Step(
        "credit_statements",
        "statements",
        "purge_statements",
        lambda s, now, batch: (batch, (now - STATEMENTS_KEPT).date()),
    ),
    # Its own period ([audit] keep_days): the trail outlives what it records.
    Step(
        "audit",
        "audit",
        "purge_audit",
        lambda s, now, batch: (now - _days(s.audit.keep_days), batch),
    ),
    # A finished erasure's record (the account id, when, by whom) is the audit trail's
    # `subscriber.erased` row told again: it goes with it.
    Step(
        "erasure_records",
        "erasure",
        "purge_erasures",
        _before(lambda s: s.audit.keep_days),
    ),
)


@dataclass
class Outcome:
    """What a run removed: rows per step, and the transactions it took."""

    counts: dict[str, int]
    batches: int = 0


async def run(
    conn: Conn,
    settings: Settings,
    now: datetime,
    *,
    steps: tuple[Step, ...] = STEPS,
    on_batch: Callable[[str, int], None] = lambda name, rows: None,
) -> Outcome:
    """Every step, batch after batch; `on_batch(step, rows)` after each commit."""
    batch = settings.retention.batch_size
    outcome = Outcome({step.name: 0 for step in steps})
    for step in steps:
        sql = queries.load(step.family)[step.query]
        arguments = step.arguments(settings, now, batch)
        while True:
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                    status: str = await conn.execute(sql, *arguments)
            except asyncpg.LockNotAvailableError:
                log.warning("retention step waited too long for a lock", step=step.name)
                break
            rows = int(status.split()[-1])
            outcome.batches += 1
            outcome.counts[step.name] += rows
            on_batch(step.name, rows)
            if rows == 0:
                break
    return outcome


def last_due(now: datetime, hour: int) -> datetime:
    """The latest time at or before `now` that a daily run was due (`hour`, UTC)."""
    today = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return today if today <= now else today - timedelta(days=1)


async def due(conn: Conn, now: datetime, hour: int, job: str = JOB) -> bool:
    """No run of `job` since the latest time one was due: the scheduled one was missed (no
    daemon up then) or is now."""
    ran_at: datetime | None = await conn.fetchval(SQL["last_run"], job)
    return ran_at is None or ran_at < last_due(now, hour)


async def record(conn: Conn, now: datetime, counts: dict[str, int], job: str = JOB) -> None:
    await conn.execute(SQL["record_run"], job, now, counts)
