"""Upgrades (issue 21, docs/operations.md "Upgrades and backups"): `notifyd migrate --check`
for deploy scripts, and the previous release's daemon, still running, keeping on taking
webhooks and delivering while this release migrates its database and after."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import asyncpg
import pytest

from notifyd import __version__
from notifyd.catalogue.samples import sample_event
from notifyd.migrate_cli import EXIT_AHEAD, EXIT_PENDING
from notifyd.storage import schema
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    Cluster,
    SmtpSink,
    base_config,
    create_database,
    eventually,
    spawn_daemon,
    write_config,
)
from tests.integration.send_support import BIN
from tests.integration.upgrade_support import (
    PREVIOUS_SCHEMA,
    notifyd,
    post,
    previous_release,
    shell,
)

pytestmark = pytest.mark.slow


def _config(
    tmp_path: Path, database_url: str, smtp_port: int | None = None, *, previous: bool = False
) -> Path:
    config = base_config(tmp_path, database_url, smtp_port)
    if previous:
        # The previous release knows no [http.admin] (its one listener served everything):
        # the config an operator has when the upgrade starts.
        del config["http.admin"]
    return write_config(tmp_path / "notifyd.toml", config)


async def test_check_says_current_and_exits_0_changing_nothing(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    before = await db.fetch("SELECT * FROM schema_migrations ORDER BY version")

    done = notifyd("migrate", "--check", "--config", str(_config(tmp_path, database_url)))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"schema at version {schema.latest_version()}: current"
    assert await db.fetch("SELECT * FROM schema_migrations ORDER BY version") == before


async def test_check_names_the_pending_migrations_and_exits_3(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute("DELETE FROM schema_migrations WHERE version > $1", PREVIOUS_SCHEMA)
    latest = schema.latest_version()

    done = notifyd("migrate", "--check", "--config", str(_config(tmp_path, database_url)))

    assert done.returncode == EXIT_PENDING == 3
    pending = [f"{m.version:04d}_{m.name}" for m in schema.available()][PREVIOUS_SCHEMA:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"schema at version {PREVIOUS_SCHEMA}, behind notifyd {__version__}: "
        f"pending {', '.join(pending)}"
    )
    # Still nothing applied: --check only reads.
    assert await db.fetchval("SELECT max(version) FROM schema_migrations") == PREVIOUS_SCHEMA
    assert latest > PREVIOUS_SCHEMA


async def test_check_says_a_newer_notifyd_migrated_the_database_and_exits_4(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    latest = schema.latest_version()
    future = [(latest + 1, "future_columns"), (latest + 2, "future_index")]
    await db.executemany("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", future)
    config = str(_config(tmp_path, database_url))

    done = notifyd("migrate", "--check", "--config", config)

    assert done.returncode == EXIT_AHEAD == 4
    names = ", ".join(f"{version:04d}_{name}" for version, name in future)
    assert done.stderr.strip().splitlines()[-1] == (
        f"schema at version {latest + 2}, ahead of notifyd {__version__} "
        f"(which knows up to {latest}): a newer notifyd applied {names}"
    )
    # Plain migrate of the older binary applies nothing, says so, and does not fail.
    migrated = notifyd("migrate", "--config", config)
    assert migrated.returncode == 0, migrated.stderr
    assert "ahead of notifyd" in migrated.stderr
    assert await db.fetchval("SELECT max(version) FROM schema_migrations") == latest + 2


async def test_the_deploy_snippet_migrates_a_database_that_is_behind(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute("DELETE FROM schema_migrations WHERE version > $1", PREVIOUS_SCHEMA)
    # The tables of the later migrations go too, so that applying them again works.
    for table in ("credit_statements", "soft_bounce_reports", "callbacks"):
        await db.execute(f"DROP TABLE {table}")
    config = str(_config(tmp_path, database_url))
    places = {"/etc/notifyd/notifyd.toml": config}

    done = shell("migrate-check", places, {"PATH": f"{BIN}:/usr/bin:/bin"})

    assert done.returncode == 0, done.stderr
    assert f"schema at version {schema.latest_version()}; applied now: 0017_" in done.stdout
    again = shell("migrate-check", places, {"PATH": f"{BIN}:/usr/bin:/bin"})
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"schema at version {schema.latest_version()}: current",
        "schema current",
    ]


async def test_previous_release_keeps_taking_webhooks_and_delivering_through_the_upgrade(
    tmp_path: Path, pg_cluster: Cluster, smtp_sink: SmtpSink
) -> None:
    old = previous_release(tmp_path / "previous")
    url = pg_cluster.dsn(await create_database(pg_cluster, template=None))
    config = _config(tmp_path, url, smtp_sink.port, previous=True)
    daemon = await spawn_daemon(config, source=old)
    conn = await asyncpg.connect(url)
    try:
        assert await schema.current_version(conn) == PREVIOUS_SCHEMA
        created = sample_event("account.created", "acc-1", email="acc-1@client.example")
        assert await post(daemon, "billing", created, BILLING_SECRET) == 202
        await smtp_sink.wait_for(1)

        # This release migrates the database while the previous one runs.
        assert notifyd("migrate", "--check", "--config", str(config)).returncode == 3
        migrated = notifyd("migrate", "--config", str(config))
        assert migrated.returncode == 0, migrated.stderr
        assert await schema.current_version(conn) == schema.latest_version()

        # The previous release still takes webhooks and delivers their notices.
        missed = sample_event("call.missed", "acc-1")
        assert await post(daemon, "pbx", missed, PBX_SECRET) == 202
        messages = await smtp_sink.wait_for(2)
        assert all(str(m["To"]) == "acc-1@client.example" for m in messages)

        # And it starts again on the newer schema (a host restarted before its upgrade).
        daemon.process.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
        daemon = await spawn_daemon(config, source=old)
        second = sample_event("call.missed", "acc-1")
        assert await post(daemon, "pbx", second, PBX_SECRET) == 202
        await smtp_sink.wait_for(3)

        async def all_sent() -> bool:
            states = await conn.fetch("SELECT state FROM notices")
            return [row["state"] for row in states] == ["sent"] * 3

        await eventually(all_sent, "the three notices recorded sent by the previous release")
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        await daemon.wait_exit()
        await conn.close()


async def test_check_without_a_database_says_so_in_one_line_and_exits_69(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://notifyd:unused@127.0.0.1:{port}/notifyd"

    done = notifyd("migrate", "--check", "--config", str(_config(tmp_path, url)))

    assert done.returncode == 69
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("database unreachable (ConnectionRefusedError)"), done.stderr
    assert "Traceback" not in done.stderr
