"""Backup and restore (issue 21, docs/operations.md "What to back up" and "Restoring"): the
doc's own backup and restore blocks, run through /bin/sh with PostgreSQL's pg_dump and
pg_restore (the test server's binaries), after losing the database, the state folder and
the config; the restored daemon opens a preference link emailed before the backup and
sends, once, a notice that was waiting at the time of the backup."""

from __future__ import annotations

import re
import shutil
from collections import deque
from pathlib import Path

import asyncpg
import pytest

from notifyd import settings as settings_module
from notifyd.catalogue.samples import sample_event
from notifyd.storage.embedded import binaries_dir
from tests.conftest import (
    PBX_SECRET,
    Cluster,
    SmtpSink,
    base_config,
    drop_database,
    eventually,
    running_daemon,
    write_config,
)
from tests.integration.daemon_support import welcome
from tests.integration.send_support import BIN
from tests.integration.upgrade_support import shell

pytestmark = pytest.mark.slow


async def _waiting_after_a_refusal(db: asyncpg.Connection) -> bool:
    """The missed call's notice tried once (the relay said 451) and queued again."""
    row = await db.fetchrow("SELECT state, attempts FROM notices WHERE kind = 'call.missed'")
    return row is not None and row["state"] == "queued" and row["attempts"] >= 1


async def _is_sent(db: asyncpg.Connection, query: str) -> bool:
    return bool(await db.fetchval(query) == "sent")


async def test_restore_opens_links_emailed_before_and_sends_the_waiting_notice_once(
    tmp_path: Path, pg_cluster: Cluster, database_url: str, smtp_sink: SmtpSink
) -> None:
    etc, state, backup = tmp_path / "etc", tmp_path / "state", tmp_path / "backup"
    etc.mkdir()
    config = base_config(tmp_path, database_url, smtp_sink.port)
    config["daemon"]["state_dir"] = str(state)
    path = write_config(etc / "notifyd.toml", config)
    settings = settings_module.load(path, environ={})
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink, "acc-1")
        smtp_sink.data_replies = deque(["451 4.3.0 Try again later"] * 1000)
        missed = sample_event("call.missed", "acc-1")
        assert (await daemon.post("pbx", missed, PBX_SECRET))[0] == 202
        db = await asyncpg.connect(database_url)
        try:
            await eventually(lambda: _waiting_after_a_refusal(db), "a refused, waiting notice")
        finally:
            await db.close()
    places = {
        "/var/backups/notifyd/latest": str(backup),
        "/etc/notifyd/": f"{etc}/",
        "/var/lib/notifyd": str(state),
    }
    tools = {"DATABASE_URL": database_url, "PATH": f"{binaries_dir()}:{BIN}:/usr/bin:/bin"}
    made = shell("backup", places, tools)
    assert made.returncode == 0, made.stderr
    assert {p.name for p in backup.iterdir()} >= {"notifyd.dump", "notifyd.toml", "link-secret"}

    # Everything lost: the database, the state folder, the config.
    name = re.sub(r"\?.*", "", database_url).rsplit("/", 1)[1]
    await drop_database(pg_cluster, name)
    admin = await asyncpg.connect(pg_cluster.dsn("postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")  # empty, as the doc asks
    finally:
        await admin.close()
    shutil.rmtree(state)
    path.unlink()
    restored = shell("restore", places, tools)
    assert restored.returncode == 0, restored.stderr
    assert (state / "link-secret").stat().st_mode & 0o777 == 0o600

    smtp_sink.data_replies.clear()
    settings = settings_module.load(path, environ={})
    async with running_daemon(settings) as daemon:
        messages = await smtp_sink.wait_for(2)
        base = re.match(r"http://[^/]+", link)
        assert base
        async with daemon.session.get(link.replace(base.group(0), daemon.base_url)) as page:
            assert page.status == 200, await page.text()
            assert 'name="form_token"' in await page.text()
        db = await asyncpg.connect(database_url)
        try:
            sent = "SELECT state FROM notices WHERE kind = 'call.missed'"
            await eventually(
                lambda: _is_sent(db, sent), "the waiting notice recorded sent after the restore"
            )
        finally:
            await db.close()
    assert len(smtp_sink.messages) == len(messages) == 2
