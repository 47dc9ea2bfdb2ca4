"""Migrations: applied once, in order, even when hosts start together."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, get_args

import asyncpg
import pytest

from notifyd.catalogue.events import MANDATORY_CATEGORIES
from notifyd.storage import queries, schema
from notifyd.storage.broadcasts import BroadcastKind, BroadcastState
from notifyd.storage.notices import NoticeState
from tests.conftest import PBX_SECRET, Cluster, create_database, drop_database, write_config


@pytest.fixture
async def empty_database(pg_cluster: Cluster) -> AsyncIterator[str]:
    name = await create_database(pg_cluster, template=None)
    yield pg_cluster.dsn(name)
    await drop_database(pg_cluster, name)


async def test_hosts_migrating_together_apply_each_migration_once(empty_database: str) -> None:
    connections = [await asyncpg.connect(empty_database) for _ in range(4)]
    try:
        results = await asyncio.gather(*(schema.migrate(conn) for conn in connections))
        applied = [len(result) for result in results]
        rows = await connections[0].fetch("SELECT version FROM schema_migrations")
        version = await schema.current_version(connections[0])
    finally:
        for conn in connections:
            await conn.close()
    latest = schema.latest_version()
    assert sorted(applied) == [0, 0, 0, latest]
    assert [row["version"] for row in rows] == list(range(1, latest + 1))
    assert version == latest


async def test_migrate_command_reports_the_schema_version(
    tmp_path: Path, empty_database: str
) -> None:
    config = write_config(
        tmp_path / "notifyd.toml",
        {
            "daemon": {"state_dir": str(tmp_path / "state")},
            "database": {"url": empty_database},
            "sources.pbx": {"secrets": [PBX_SECRET]},
        },
    )

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "notifyd", "migrate", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = await asyncio.to_thread(migrate)
    second = await asyncio.to_thread(migrate)
    assert first.returncode == 0, first.stderr
    assert f"schema at version {schema.latest_version()}" in first.stdout
    assert "0001_initial" in first.stdout
    assert second.returncode == 0
    assert "applied now: none" in second.stdout


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [migration.version for migration in schema.available()]
    assert versions == list(range(1, len(versions) + 1))


async def test_a_broadcasts_progress_reads_only_its_sent_notices(db: asyncpg.Connection) -> None:
    """The admin API's progress of a broadcast, polled while a million notices are queued:
    the state is looked up in the index, not in each row (migration 0008)."""
    from notifyd.storage.broadcasts import SQL

    async with db.transaction():
        await db.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            row[0] for row in await db.fetch("EXPLAIN " + SQL["get_broadcast"], uuid.uuid4())
        )
    assert "notices_event_state" in plan
    assert "(state = 'sent'::text)" in plan.split("notices_event_state", 1)[1].split("->")[0]


@pytest.mark.parametrize(
    ("table", "constraint", "allowed"),
    [
        ("notices", "notices_state_check", NoticeState),
        ("broadcasts", "broadcasts_state_check", BroadcastState),
        ("broadcasts", "broadcasts_kind_check", BroadcastKind),
    ],
)
async def test_the_values_a_check_constraint_allows_are_those_the_code_names(
    table: str, constraint: str, allowed: Any, db: asyncpg.Connection
) -> None:
    # The admin API's answers and its OpenAPI document take these values from the code.
    definition = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conname = $1 AND conrelid = $2::regclass",
        constraint,
        table,
    )
    assert definition is not None
    assert sorted(re.findall(r"'([^']*)'::text", definition)) == sorted(get_args(allowed))


def _queue_arguments(token: uuid.UUID) -> list[object]:
    """Arguments for waves.sql's queue that insert nothing."""
    return [*([[]] * 20), [], "host", token, 60.0, "channel", [], [], [], [], [], *([[]] * 11)]


async def test_the_claim_and_the_hand_over_give_the_columns_of_a_claimed_notice(
    db: asyncpg.Connection,
) -> None:
    """The columns a worker is handed are written once (parts.sql's
    claimed_notice_columns); both statements that claim notices give them, and
    ClaimedNotice takes them field for field."""
    from notifyd.storage.notices import CLAIMED_COLUMNS
    from notifyd.storage.notices import SQL as NOTICES
    from notifyd.storage.waves import SQL as WAVES

    claim = await db.prepare(NOTICES["claim_due"])
    queue = await db.prepare(WAVES["queue"])
    assert tuple(a.name for a in claim.get_attributes()) == (*CLAIMED_COLUMNS, "later")
    assert tuple(a.name for a in queue.get_attributes()) == ("claimed", *CLAIMED_COLUMNS)


async def test_the_hand_over_looks_up_the_notices_it_claims_only(
    db: asyncpg.Connection,
) -> None:
    """The at-commit hand-over is on every webhook's path: the event and the subscriber are
    read by their keys, and only for the notices claimed (not those left to the workers)."""
    from notifyd.storage.waves import SQL as WAVES

    rows = await db.fetch("EXPLAIN " + WAVES["queue"], *_queue_arguments(uuid.uuid4()))
    plan = "\n".join(row[0] for row in rows)
    assert "Index Scan using subscribers_pkey" in plan
    assert "Index Scan using events_pkey" in plan
    assert plan.count("One-Time Filter: (c.state = 'sending'::text)") == 2


def test_the_withholding_at_the_claim_spares_the_catalogues_mandatory_categories() -> None:
    """parts.sql's withholding names the mandatory categories in SQL (a parameter would be
    one more per statement that uses it): they are the catalogue's."""
    part = queries.load("notices")["claim_due"]
    spared = re.search(r"t\.category NOT IN \(([^)]*)\)", part)
    assert spared is not None
    named = {name.strip().strip("'") for name in spared.group(1).split(",")}
    assert named == {category.value for category in MANDATORY_CATEGORIES}


PRIVACY_DOC = (Path(__file__).resolve().parents[2] / "docs" / "privacy.md").read_text("utf-8")


async def test_the_privacy_data_map_names_every_table_and_column(db: asyncpg.Connection) -> None:
    """docs/privacy.md tells a data-protection officer what each column holds and when it
    goes: a migration that adds a table or a column adds its row or its name there."""
    data_map = PRIVACY_DOC.split("## The data map", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2]
        for line in data_map.splitlines()
        if line.startswith("| `")
    }
    columns = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    )
    missing = [
        f"{c['table_name']}.{c['column_name']}"
        for c in columns
        if f"`{c['column_name']}`" not in rows.get(c["table_name"], "")
    ]
    assert missing == []
