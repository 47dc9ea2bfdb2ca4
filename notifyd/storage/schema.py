"""Versioned migrations from `notifyd/storage/migrations/NNNN_name.sql`, applied in order.

Hosts that start together race to migrate; a session advisory lock makes one of them
apply and the others wait and find nothing left to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from notifyd.settings import DatabaseSettings
from notifyd.storage.db import Conn

# Any constant: the key every notifyd host agrees on for "migrating now".
MIGRATION_LOCK_KEY = 0x6E6F7469667964  # "notifyd"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("notifyd.storage.migrations")
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


def latest_version() -> int:
    return available()[-1].version


async def current_version(conn: Conn) -> int:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    return int(version)


@dataclass(frozen=True)
class Standing:
    """Where a database stands against this code's migrations (`notifyd migrate --check`)."""

    version: int
    # This code's migrations the database has not had yet.
    pending: list[Migration]
    # Migrations the database has that this code does not know: a newer notifyd applied
    # them. "version name" from schema_migrations, as that host recorded them.
    unknown: list[str]


async def standing(conn: Conn) -> Standing:
    """Read only: no lock taken, nothing created, so a deploy script may ask at any time."""
    version = await current_version(conn)
    pending = [m for m in available() if m.version > version]
    unknown: list[str] = []
    if version > latest_version():
        rows = await conn.fetch(
            "SELECT version, name FROM schema_migrations WHERE version > $1 ORDER BY version",
            latest_version(),
        )
        unknown = [f"{row['version']:04d}_{row['name']}" for row in rows]
    return Standing(version, pending, unknown)


async def version_on_new_connection(dsn: str, settings: DatabaseSettings) -> int:
    """The schema version, read on a connection of its own (closed after)."""
    conn = await asyncpg.connect(
        dsn,
        timeout=settings.connect_timeout_seconds,
        server_settings={"application_name": "notifyd-readyz"},
    )
    try:
        return await current_version(conn)
    finally:
        await conn.close(timeout=2)


async def migrate(conn: Conn) -> list[Migration]:
    """Apply every migration newer than the database; return those applied here."""
    applied: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        # Made only when missing: CREATE TABLE IF NOT EXISTS asks for CREATE on the schema
        # even when the table exists, which a runtime role without DDL rights has not
        # (docs/operations.md "Roles"); a current schema then needs no privilege here.
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not exists:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
        done = await current_version(conn)
        for migration in available():
            if migration.version <= done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied
