"""What a claim costs as a backlog of notices not yet due grows (issue 22): as the worker's
pooled connection runs it, with the generic plan it caches (forced here), a claim reads
about as many buffers with 100,000 deferred notices (a night of quiet hours) as with 1,000,
the plan having been made while the table was small. Counted with EXPLAIN (ANALYZE,
BUFFERS), never timed. The delivery callbacks' claim and "next due" are checked the same
way (they were flat already: min() alone gets the index, a range on due_at too)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from notifyd.settings import DatabaseSettings
from notifyd.storage import callbacks as callback_store
from notifyd.storage import db as storage_db
from notifyd.storage import notices as notice_store
from notifyd.storage.db import Conn

# What each backlog may add to a claim's buffers: a btree a level deeper, a page of the
# index's end. A plan that scans the backlog reads thousands.
FLAT = 10

NOTICE_CLAIM = "int, text, uuid, float8, text[], text[], text[], text[]"
NOTICE_ARGS = "10, 'host:1', gen_random_uuid(), 60, '{}', '{}', '{}', '{}'"

DEFER = """
INSERT INTO notices (id, account_id, kind, category, recipient, language, timezone,
                     message_id, context, due_at)
SELECT gen_random_uuid(), 'acc-' || n % 997, 'call.missed', 'calls',
       'user' || n || '@client.example', 'en', 'Europe/Berlin', n || '@voip.example',
       jsonb_build_object('caller', '+4930' || n, 'called', 'office'),
       now() + interval '8 hours' + n * interval '10 milliseconds'
FROM generate_series($1::int, $2::int - 1) AS n
"""

OUTCOMES = """
INSERT INTO callbacks (notice_id, event_id, account_id, source, source_webhook_id,
                       event_type, type, category, notice_state, due_at)
SELECT id, gen_random_uuid(), account_id, 'pbx', 'wh-' || id, 'call.missed',
       'notice.delivered', 'calls', 'sent', due_at
FROM notices WHERE NOT EXISTS (SELECT 1 FROM callbacks AS c WHERE c.notice_id = notices.id)
"""


async def _buffers(conn: Conn, execute: str) -> tuple[int, Any]:
    """The shared buffers (hit or read) that running the prepared statement takes, and its
    plan, for the message of a failure."""
    explained = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}")
    plan = json.loads(explained)[0]["Plan"]
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"], plan


async def _grown(conn: Conn, statements: dict[str, str]) -> None:
    """Run each prepared statement once on the empty tables (its generic plan is made and
    cached then, as a daemon's first claims make it), then with 1,000 and with 100,000
    deferred notices and as many callbacks: the buffers it reads may not grow with them."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    for execute in statements:
        await conn.execute(execute)
    read: dict[str, list[int]] = {execute: [] for execute in statements}
    plans: dict[str, Any] = {}
    for start, end in ((0, 1_000), (1_000, 100_000)):
        await conn.execute(DEFER, start, end)
        await conn.execute(OUTCOMES)
        for execute in statements:
            buffers, plans[execute] = await _buffers(conn, execute)
            read[execute].append(buffers)
    assert await conn.fetchval("SELECT count(*) FROM callbacks") == 100_000
    for execute, (small, big) in read.items():
        assert big <= small + FLAT, (statements[execute], small, big, plans[execute])


async def test_claims_read_as_much_with_100000_deferred_notices_as_with_1000(
    database_url: str,
) -> None:
    pool = await storage_db.create_pool(database_url, DatabaseSettings())
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"PREPARE claim ({NOTICE_CLAIM}) AS {notice_store.SQL['claim_due']}")
            await conn.execute(
                f"PREPARE callbacks (int, uuid, float8) AS {callback_store.SQL['claim_due']}"
            )
            await conn.execute(f"PREPARE next_callback AS {callback_store.SQL['next_due']}")
            await _grown(
                conn,
                {
                    f"EXECUTE claim ({NOTICE_ARGS})": "notices.sql claim_due",
                    "EXECUTE callbacks (10, gen_random_uuid(), 60)": "callbacks.sql claim_due",
                    "EXECUTE next_callback": "callbacks.sql next_due",
                },
            )
            # Nothing was due, so nothing was claimed; `later` is the backlog's first.
            claim = await notice_store.claim_due(conn, 10, "host:1", uuid.uuid4(), 60)
            first = await conn.fetchval("SELECT min(due_at) FROM notices")
            assert (claim.notices, claim.later) == ([], first)
            assert await callback_store.next_due(conn) == first
    finally:
        await pool.close()
