"""How the wave statements are planned (storage/sql/waves.sql, storage/waves.py's PLANS,
intake/group_commit.py's BEGIN): `store_and_lock`, `facts` and `queue`, and the rare
statements that run beside them, on one generic plan a connection. A generic plan is kept
while the tables grow (until an ANALYZE), so the one made on tables analyzed while empty
must still find every row it reads through an index on its key. On a real PostgreSQL,
through intake.ingest_batch in the group commit's transaction, as the daemon runs it."""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake.facts import Incoming
from notifyd.intake.group_commit import BEGIN
from notifyd.intake.ingest import ingest_batch
from notifyd.storage import queries
from notifyd.storage.db import Conn
from tests.integration.intake_support import NOW, RULES

WAVES = queries.load("waves")
# Every statement a wave can run, all on generic plans: the three of every wave, and the
# rare ones: before `facts` a replayed webhook id's receipt, an event's files, an account
# event's save (the notices waiting that follow a new language, time zone or address, the
# links a new address revokes, an erased address given again), after it a spending rate's balances,
# after `queue` a merged missed call.
GENERIC = {
    "store_and_lock": WAVES["store_and_lock"],
    "facts": WAVES["facts"],
    "queue": WAVES["queue"],
    "find_receipt": queries.load("events")["find_receipt"],
    "insert_attachment": queries.load("attachments")["insert_attachment"],
    "upsert_subscriber": queries.load("subscribers")["upsert_subscriber"],
    "update_subscriber": queries.load("subscribers")["update_subscriber"],
    "follow_choices": queries.load("notices")["follow_choices"],
    "readdress_waiting": queries.load("notices")["readdress_waiting"],
    "revoke_links": queries.load("links")["revoke_links"],
    "resuppress": queries.load("erasure")["resuppress"],
    "cancel_waiting_to": queries.load("notices")["cancel_waiting_to"],
    "recent_balances": queries.load("credit")["recent_balances"],
    "mark_merged": queries.load("notices")["mark_merged"],
}
# The tables each statement must read (by key), so that an empty walk cannot pass; the
# inserts read none (an ON CONFLICT's check is its unique index's, not a scan).
READS = {
    "store_and_lock": {"subscribers"},
    "facts": {"address_health", "notices"},
    "queue": {"events", "subscribers", "credit_states", "credit_statements", "address_health"},
    "find_receipt": {"webhook_receipts"},
    "insert_attachment": set(),
    "upsert_subscriber": set(),
    "update_subscriber": {"subscribers"},
    "follow_choices": {"notices"},
    "readdress_waiting": {"notices"},
    "revoke_links": {"subscribers"},
    "resuppress": {"erased_addresses"},
    "cancel_waiting_to": {"notices"},
    "recent_balances": {"balance_history"},
    "mark_merged": {"notices"},
}
# Where a key has more than one column, the whole key: `facts` reading every notice of its
# accounts for their dedupe keys had an equality (the account) and grew with their history.
WHOLE_KEYS = {
    "facts": [r"account_id = k\.account_id\) AND \(dedupe_key = k\.dedupe_key", r"created_at >"]
}
KEY_LOOKUPS = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}
# A key lookup's index condition has an equality (`= $1`, `= ANY ($8)`, `= c.event_id`): a
# range alone (`period < e.period`) walks the index over every account's rows.
EQUALITY = re.compile(r"\w = ")


def _wave(number: int) -> list[Incoming]:
    """One wave: an event of each of three accounts; each queues a notice."""
    return [
        Incoming(
            "pbx",
            f"w-{number}-{account}",
            parse_event(json.dumps(sample_event("fax.sent", f"acc-{account}", NOW)).encode()),
            RULES,
            NOW,
        )
        for account in (1, 2, 3)
    ]


async def _run_waves(conn: Conn, count: int) -> None:
    """`count` shared commits of one wave each, opened as the group commit opens them."""
    for number in range(count):
        await conn.execute(BEGIN)
        receipts = await ingest_batch(conn, _wave(number))
        await conn.execute("COMMIT")
        assert all(r.routing is not None and r.routing.notices for r in receipts), receipts


async def _prepared(conn: Conn) -> dict[str, asyncpg.Record]:
    """This connection's prepared statements (asyncpg's cache), by their name in sql/."""
    rows = await conn.fetch(
        "SELECT name, statement, generic_plans, custom_plans,"
        " cardinality(parameter_types) AS parameters FROM pg_prepared_statements"
    )
    names = {text: name for name, text in {**WAVES, **GENERIC}.items()}
    return {names[row["statement"]]: row for row in rows if row["statement"] in names}


def _table_reads(node: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """Each read of a table in a plan: (node type, table, the key condition it reads by).
    A ModifyTable names the table it writes, which is not a read."""
    reads = []
    if "Relation Name" in node and node["Node Type"] != "ModifyTable":
        condition = node.get("Index Cond") or node.get("Recheck Cond")
        reads.append((node["Node Type"], node["Relation Name"], condition))
    for child in node.get("Plans", []):
        reads.extend(_table_reads(child))
    return reads


async def test_the_wave_statements_are_planned_once_a_connection(
    db: asyncpg.Connection, daemon_pool: asyncpg.Pool
) -> None:
    await db.executemany(
        "INSERT INTO subscribers (account_id, email) VALUES ($1, $2)",
        [(f"acc-{n}", f"user{n}@client.example") for n in (1, 2, 3)],
    )
    async with daemon_pool.acquire() as conn:
        await _run_waves(conn, 10)
        plans = {
            name: (row["generic_plans"], row["custom_plans"])
            for name, row in (await _prepared(conn)).items()
        }
        # Outside a batch the connection is as the pool gave it.
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
        assert await conn.fetchval("SHOW enable_seqscan") == "on"
    assert plans["store_and_lock"] == (10, 0), plans
    assert plans["queue"] == (10, 0), plans
    assert plans["facts"] == (10, 0), plans
    assert await db.fetchval("SELECT count(*) FROM notices") == 30


async def test_the_generic_plans_made_on_empty_tables_read_every_table_by_its_key(
    db: asyncpg.Connection, daemon_pool: asyncpg.Pool
) -> None:
    """Statistics of empty tables (a fresh install), kept while a day of webhooks or a
    fan-out fills them: the plans a batch caches then must not read any table whole."""
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    for row in tables:
        await db.execute(f"ALTER TABLE {row['tablename']} SET (autovacuum_enabled = false)")
        await db.execute(f"ANALYZE {row['tablename']}")
    await db.executemany(
        "INSERT INTO subscribers (account_id, email) VALUES ($1, $2)",
        [(f"acc-{n}", f"user{n}@client.example") for n in (1, 2, 3)],
    )
    async with daemon_pool.acquire() as conn:
        await _run_waves(conn, 1)  # the generic plans are made and cached here
        # The rare ones, that this wave did not need (held: asyncpg closes a statement
        # whose object is gone).
        cached = await _prepared(conn)
        held = [await conn.prepare(t) for name, t in GENERIC.items() if name not in cached]
        prepared = await _prepared(conn)
        await conn.execute(BEGIN)
        # Generic whatever the BEGIN says, so that a version that keeps custom plans shows
        # the generic plans its settings would make.
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        reads = {}
        for name in GENERIC:
            row = prepared[name]
            nulls = ", ".join(["NULL"] * row["parameters"])
            plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {row['name']}({nulls})")
            reads[name] = _table_reads(json.loads(plan)[0]["Plan"])
        await conn.execute("ROLLBACK")
        del held
    whole = [
        (name, kind, table, condition)
        for name, found in reads.items()
        for kind, table, condition in found
        if kind not in KEY_LOOKUPS or not EQUALITY.search(condition or "")
    ]
    assert whole == [], (whole, reads)
    missing = {name: READS[name] - {table for _, table, _ in reads[name]} for name in GENERIC}
    assert missing == {name: set() for name in GENERIC}, reads
    partial = [
        (name, key)
        for name, keys in WHOLE_KEYS.items()
        for key in keys
        if not any(re.search(key, condition or "") for _, _, condition in reads[name])
    ]
    assert partial == [], reads["facts"]
