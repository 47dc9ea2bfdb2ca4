"""External PostgreSQL (docs/operations.md "External PostgreSQL"): the doc's roles made by
its own psql script, `notifyd migrate` run as the owner by the doc's command, and a daemon
running as the runtime role (no DDL, no ownership) through a webhook, an email, a digest
and the retention run; on the test server (16) and on Debian 12's PostgreSQL 15, the
oldest the suite can install."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest

from notifyd import settings as settings_module
from notifyd.jobs import flush_digests, purge_expired
from notifyd.storage import embedded
from tests.conftest import (
    Cluster,
    SmtpSink,
    running_daemon,
    start_cluster,
    stop_cluster,
    write_config,
)
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import post, subscribe
from tests.integration.send_support import OPERATIONS, run, snippet

OLDEST_PACKAGED = Path("/usr/lib/postgresql/15/bin")
DOC_SUPERUSER_URL = "postgresql://postgres@db.internal/postgres"


def role_url(cluster: Cluster, role: str, password: str, database: str) -> str:
    """The role's URL to the test server's socket (the doc's host is db.internal)."""
    host = quote(str(cluster.server.socket_dir), safe="/")
    return f"postgresql://{role}:{quote(password, safe='')}@/{database}?host={host}"


async def make_roles(cluster: Cluster) -> tuple[str, str]:
    """The doc's pg-roles script, run by psql as the doc runs it, with names of this test
    (roles are the server's, not a database's): the owner's and the runtime role's URLs."""
    suffix = uuid.uuid4().hex[:8]
    owner, app, database = f"nd_owner_{suffix}", f"nd_app_{suffix}", f"nd_{suffix}"
    script = (
        snippet("pg-roles", OPERATIONS)
        .replace(DOC_SUPERUSER_URL, cluster.dsn("postgres"))
        .replace("notifyd_owner", owner)
        .replace("notifyd_app", app)
    )
    script = re.sub(r"\bnotifyd\b", database, script)
    ran = await run(["bash", "-c", script])
    assert ran.code == 0, ran.err
    passwords = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']+)'", script))
    return (
        role_url(cluster, owner, passwords[owner], database),
        role_url(cluster, app, passwords[app], database),
    )


async def migrate_as_owner(owner_url: str, config: Path) -> None:
    """The doc's pg-migrate command, with the test's URL and config file."""
    command = snippet("pg-migrate", OPERATIONS)
    command = re.sub(r"'postgresql://[^']*'", f"'{owner_url}'", command)
    command = command.replace("/etc/notifyd/notifyd.toml", str(config))
    ran = await run(["bash", "-c", command])
    assert ran.code == 0, ran.err
    assert "schema at version" in ran.out, ran.out


def runtime_environment(app_url: str) -> dict[str, str]:
    """The doc's pg-runtime-env file, read as systemd's EnvironmentFile is (the URL the
    test's)."""
    (line,) = snippet("pg-runtime-env", OPERATIONS).strip().splitlines()
    name, _ = line.split("=", 1)
    return {name: app_url}


async def the_runtime_role_runs_notifyd(
    cluster: Cluster, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    owner_url, app_url = await make_roles(cluster)
    config = admin_config(tmp_path, "", smtp_sink.port)
    config["defaults"]["quiet_hours"] = ""
    path = write_config(tmp_path / "notifyd.toml", config)
    await migrate_as_owner(owner_url, path)
    settings = settings_module.load(path, environ=runtime_environment(app_url))
    app = await asyncpg.connect(app_url)
    try:
        # The runtime role can change no schema.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("CREATE TABLE intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("ALTER TABLE notices ADD COLUMN intruder int")
        async with running_daemon(settings) as daemon:
            await subscribe(daemon, "acc-1", {}, language="en")
            await subscribe(daemon, "acc-2", {"modes": {"calls": "hourly"}}, language="en")
            await post(daemon, "call.missed", "acc-1", call_id="call-1")
            await post(daemon, "call.missed", "acc-2", call_id="call-2")
            await smtp_sink.wait_for(3)  # two welcomes, acc-1's missed call
            database, dispatcher = daemon.daemon.database, daemon.daemon.dispatcher
            assert database is not None
            assert dispatcher is not None
            later = datetime.now(UTC) + timedelta(hours=2)
            digests = await flush_digests(
                database.pool, later, settings.message_domain, lambda: None
            )
            assert digests == (1, 1)
            dispatcher.wake()
            await smtp_sink.wait_for(4)
            purged = await purge_expired(database.pool, settings, later + timedelta(days=2))
            assert purged is not None
        kinds = await app.fetch("SELECT kind, state FROM notices ORDER BY created_at")
        assert sorted((row["kind"], row["state"]) for row in kinds) == [
            ("account.created", "sent"),
            ("account.created", "sent"),
            ("call.missed", "digested"),
            ("call.missed", "sent"),
            ("digest", "sent"),
        ]
    finally:
        await app.close()


async def test_the_runtime_role_needs_no_ddl_and_runs_everything(
    pg_cluster: Cluster, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    await the_runtime_role_runs_notifyd(pg_cluster, tmp_path, smtp_sink)


@pytest.fixture
def oldest_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A server of Debian 12's postgresql-15 package, the oldest version the suite runs."""
    if not (OLDEST_PACKAGED / "initdb").exists():
        pytest.skip(f"{OLDEST_PACKAGED}/initdb missing: apt-get install postgresql-15")
    monkeypatch.setattr(embedded, "binaries_dir", lambda: OLDEST_PACKAGED)
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


async def test_postgresql_15_migrates_and_runs_notifyd_as_the_runtime_role(
    oldest_cluster: Cluster, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    conn = await asyncpg.connect(oldest_cluster.dsn("postgres"))
    try:
        version = await conn.fetchval("SHOW server_version_num")
    finally:
        await conn.close()
    assert version.startswith("15"), version
    await the_runtime_role_runs_notifyd(oldest_cluster, tmp_path, smtp_sink)
