"""What the intake costs PostgreSQL, alone: the same webhooks as bench/ingest.py, applied by
`intake.ingest_batch` in shared transactions of BATCH (about what 32 clients make), one
connection, nothing else running; against baseline (b)'s one INSERT and COMMIT per webhook
on the same server. Figures are CPU per webhook (the backend's, read from /proc, and this
process's: routing, asyncpg) and each statement's time, so they hardly move with the
machine's load, unlike a rate.

    .venv/bin/python bench/intake_cost.py [--webhooks 4200] [--batch 7] [--statements]
                                          [--store-only] [--explain]

--store-only measures, instead of the intake, what a 202 given after the commit with the
routing left to a later stage would have to commit at least: `store_and_lock`'s inserts of
the receipts and events alone, one statement a transaction (issue 22's "route after the
commit?": docs/performance.md).

--explain runs on Debian's PostgreSQL 15 (apt-get install postgresql-15: pgserver's 16 has
no auto_explain) and, after the measured batches, prints the plan of each statement of one
more batch as it ran, its cached plan included: auto_explain with ANALYZE and BUFFERS, sent
to this client as notices. Its figures of CPU are then 15's, under auto_explain's timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline_server import INSERT, TABLE
from harness import (  # bench/ is not a package: run as a script
    CpuWatch,
    Postgres,
    Row,
    add_subscribers,
    machine,
    signed_requests,
    table,
    throwaway_postgres,
)

from notifyd.catalogue.events import parse_event, stored_fields
from notifyd.intake.facts import Incoming, IntakeRules
from notifyd.intake.group_commit import BEGIN
from notifyd.intake.ingest import ingest_batch
from notifyd.settings import CallSettings, DatabaseSettings, DefaultsSettings
from notifyd.storage import db, embedded, queries
from notifyd.storage.db import Conn

ACCOUNTS = 2000
BASELINE = "(b) one INSERT and COMMIT each"
BATCH = 7  # webhooks a shared commit takes at 32 clients (bench/ingest.py)
DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")
EXPLAIN = (
    "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
    "SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on; "
    "SET auto_explain.log_level = notice"
)
# Each statement by its name in storage/sql/, for the table.
NAMES = {
    text: name
    for family in (p.stem for p in Path(queries.__file__).with_name("sql").glob("*.sql"))
    for name, text in queries.load(family).items()
}
# store_and_lock up to its lock: the receipts and the events, nothing read or locked.
STORE_ONLY = (
    queries.load("waves")["store_and_lock"].split("), locked AS (")[0] + ")\nSELECT id FROM stored"
)
NAMES[STORE_ONLY] = "store_only"


def _incoming(requests: list[dict[str, Any]], statements: bool = False) -> list[Incoming]:
    # --statements: every subscriber chose the monthly credit statement, so each billing
    # event also adds to its month's row (waves.sql queue).
    modes = {"statement": "immediate"} if statements else {}
    rules = IntakeRules(
        DefaultsSettings(quiet_hours=None, modes=modes), CallSettings(), {}, "voip.example"
    )
    return [
        Incoming(
            r["path"].rsplit("/", 1)[1],
            r["headers"]["webhook-id"],
            parse_event(r["body"].encode()),
            rules,
            datetime.now(UTC),
        )
        for r in requests
    ]


async def _store_only(conn: Conn, items: Sequence[Incoming]) -> None:
    rows = [
        (uuid4(), i.source, i.webhook_id, i.event.type, i.event.account_id, i.event.timestamp)
        for i in items
    ]
    data = [json.dumps(stored_fields(i.event.data)) for i in items]
    await conn.fetch(STORE_ONLY, *(list(column) for column in zip(*rows, strict=True)), data)


async def _ingest(conn: Conn, items: Sequence[Incoming]) -> None:
    await ingest_batch(conn, items)


async def _ours(
    dsn: str,
    items: list[Incoming],
    batch: int,
    apply: Callable[[Conn, Sequence[Incoming]], Awaitable[None]] = _ingest,
    explain: bool = False,
) -> dict[str, float]:
    """Per webhook, in microseconds: backend CPU, client CPU, and each statement's time."""
    pool = await db.create_pool(dsn, DatabaseSettings())
    spent: defaultdict[str, float] = defaultdict(float)  # seconds per statement name
    try:
        async with pool.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")

            def logged(query: asyncpg.connection.LoggedQuery) -> None:
                name = NAMES.get(query.query.strip(), query.query.split(";")[0].split()[0])
                spent[name] += query.elapsed

            if explain:  # a batch of webhooks not yet seen, kept for the plans
                items, unseen = items[:-batch], items[-batch:]
            warm, measured = items[: len(items) // 5], items[len(items) // 5 :]
            for part, timed in ((warm, False), (measured, True)):
                if timed:
                    conn.add_query_logger(logged)
                    server, client = CpuWatch(lambda: [backend]), time.process_time()
                for start in range(0, len(part), batch):
                    await conn.execute(BEGIN)
                    await apply(conn, part[start : start + batch])
                    await conn.execute("COMMIT")
            conn.remove_query_logger(logged)
            result = {"server": server.seconds(), "client": time.process_time() - client}
            if explain:
                await _explained(conn, unseen, apply)
    finally:
        await pool.close()
    result.update(spent)
    return {key: value / len(measured) * 1e6 for key, value in result.items()}


async def _explained(
    conn: Conn,
    items: Sequence[Incoming],
    apply: Callable[[Conn, Sequence[Incoming]], Awaitable[None]],
) -> None:
    """One more batch, each statement's plan printed as it ran (auto_explain's notices)."""
    plans: list[str] = []
    conn.add_log_listener(lambda _conn, message: plans.append(str(message.message)))
    await conn.execute(EXPLAIN)
    await conn.execute(BEGIN)
    await apply(conn, items)
    await conn.execute("COMMIT")
    await conn.execute("RESET ALL")
    for plan in plans:
        query = plan.split("Query Text: ", 1)[-1].lstrip()
        name = next((n for text, n in NAMES.items() if query.startswith(text.strip())), "")
        print(f"\n--- {name or query[:60]} ---\n{plan}")


async def _baseline(dsn: str, requests: list[dict[str, Any]]) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(TABLE)
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        server, client = CpuWatch(lambda: [backend]), time.process_time()
        for r in requests:
            await conn.execute(INSERT, r["headers"]["webhook-id"], r["body"])
        used = {"server": server.seconds(), "client": time.process_time() - client}
    finally:
        await conn.close()
    return {key: value / len(requests) * 1e6 for key, value in used.items()}


async def measure(
    pg: Postgres,
    count: int,
    batch: int,
    statements: bool = False,
    store_only: bool = False,
    explain: bool = False,
) -> list[Row]:
    dsn = await pg.fresh_database()
    await add_subscribers(dsn, ACCOUNTS)
    requests = signed_requests(count, ACCOUNTS, seed=7)
    apply = _store_only if store_only else _ingest
    ours = await _ours(dsn, _incoming(requests, statements), batch, apply, explain)
    base = await _baseline(dsn, requests[len(requests) // 5 :])
    label = "store only" if store_only else "intake alone"
    rows = [
        Row(f"{label}, {what} CPU per webhook", "us", [ours[key]], [base[key]], BASELINE)
        for what, key in (("PostgreSQL", "server"), ("client", "client"))
    ]
    names = sorted((k for k in ours if k not in ("server", "client")), key=ours.__getitem__)
    for name in reversed(names):
        rows.append(Row(f"{label}, {name}, time per webhook", "us", [ours[name]], [], ""))
    return rows


async def main(count: int, batch: int, statements: bool, store_only: bool, explain: bool) -> None:
    if explain:
        embedded.binaries_dir = lambda: DEBIAN_15  # the embedded 16 has no auto_explain
    async with throwaway_postgres() as pg:
        rows = await measure(pg, count, batch, statements, store_only, explain)
    print(f"intake of {count:,} webhooks in transactions of {batch}, one connection; {machine()}")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=4200)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument(
        "--statements", action="store_true", help="every subscriber chose the monthly statement"
    )
    parser.add_argument(
        "--store-only",
        action="store_true",
        help="only the receipts and events, as a 202 before the routing would commit",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print one batch's plans as they ran (needs 15)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.webhooks, args.batch, args.statements, args.store_only, args.explain))
