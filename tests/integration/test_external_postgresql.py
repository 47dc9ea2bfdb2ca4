"""External PostgreSQL (docs/operations.md "External PostgreSQL"): the doc's roles made by
its own psql script, `notifyd migrate` run as the owner by the doc's command, and a daemon
running as the runtime role (no DDL, no ownership) through a webhook, an email, a digest
and the retention run; on the test server (16), on Debian 12's PostgreSQL 15 and on
PostgreSQL 13, the oldest the doc claims (tests/integration/postgres_support.py)."""

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
from tests.conftest import (
    Cluster,
    SmtpSink,
    running_daemon,
    stop_cluster,
    write_config,
)
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import post, subscribe
from tests.integration.postgres_support import cluster_on, debian_15, postgresql_13
from tests.integration.send_support import OPERATIONS, run, snippet

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


@pytest.fixture(params=["13", "15"])
def packaged_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A server of PostgreSQL 13, the oldest version docs/operations.md claims (the npm
    registry's binaries, tests/postgresql-13), or of Debian 12's postgresql-15."""
    binaries = postgresql_13() if request.param == "13" else debian_15()
    cluster = cluster_on(binaries)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


async def test_older_postgresql_migrates_and_runs_notifyd_as_the_runtime_role(
    packaged_cluster: Cluster, tmp_path: Path, smtp_sink: SmtpSink, request: pytest.FixtureRequest
) -> None:
    conn = await asyncpg.connect(packaged_cluster.dsn("postgres"))
    try:
        version = await conn.fetchval("SHOW server_version_num")
    finally:
        await conn.close()
    assert version.startswith(request.node.callspec.params["packaged_cluster"]), version
    await the_runtime_role_runs_notifyd(packaged_cluster, tmp_path, smtp_sink)
