"""`notifyd simulate` against a running daemon: what `--set` gives is what is stored."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from notifyd.cli import main
from tests.conftest import base_config, load_config, running_daemon


async def test_the_readme_shape_of_call_id_is_sent_as_a_string_and_accepted(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        argv = ["simulate", "call.missed", "--config", str(settings.path), "--url", daemon.base_url]
        argv += ["--set", "call_id=1700000099.7", "--set", "ring_seconds=40"]
        # main() runs its own event loop: in a thread, beside the daemon's.
        code = await asyncio.wait_for(asyncio.to_thread(main, argv), timeout=30)
    assert code == 0, capsys.readouterr()
    assert "-> 202" in capsys.readouterr().out
    stored = await db.fetchval("SELECT data FROM events")
    assert stored["call_id"] == "1700000099.7"
    assert stored["ring_seconds"] == 40


async def test_a_source_that_takes_reports_is_never_sent_an_event(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a bounce-report source listed first, simulate still signs for an events source;
    told to use the report source, it says why not in one line and sends nothing."""
    config = {"sources.mailgun": {"kind": "mailgun", "signing_keys": ["key-for-tests"]}}
    config |= base_config(tmp_path, database_url, None)
    settings = load_config(tmp_path, config)
    assert next(iter(settings.sources)) == "mailgun"
    async with running_daemon(settings) as daemon:
        argv = ["simulate", "call.missed", "--config", str(settings.path), "--url", daemon.base_url]
        default = await asyncio.wait_for(asyncio.to_thread(main, argv), timeout=30)
        assert default == 0, capsys.readouterr()
        capsys.readouterr()
        named = await asyncio.wait_for(
            asyncio.to_thread(main, [*argv, "--source", "mailgun"]), timeout=30
        )
    err = capsys.readouterr().err.strip()
    assert named != 0
    assert "Traceback" not in err
    assert err.splitlines() == [
        "source 'mailgun' is a 'mailgun' source, which takes bounce reports, not events:"
        " name an events source with --source"
    ]
    assert await db.fetchval("SELECT count(*) FROM events") == 1
