"""The daemon as a service: a real process, signals, the CLI, the embedded database."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    OTHER_SECRET,
    PBX_SECRET,
    WAIT,
    DaemonProcess,
    SmtpSink,
    base_config,
    eventually,
    signed_request,
    spawn_daemon,
    write_config,
)
from tests.integration.queue_support import settled_notices

pytestmark = pytest.mark.slow

_NOT_UTF8 = "is not UTF-8 text (TOML must be): line"


async def _post(
    daemon: DaemonProcess, source: str, event: dict[str, object], secret: str
) -> tuple[int, dict[str, object]]:
    body, headers = signed_request(event, secret)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
        session.post(
            f"{daemon.base_url}/v1/webhooks/{source}", data=body, headers=headers
        ) as response,
    ):
        return response.status, await response.json()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifyd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
async def test_sigterm_mid_delivery_exits_0_and_sends_each_notice_once_across_restart(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    db: asyncpg.Connection,
    stop_signal: signal.Signals,
) -> None:
    smtp_sink.data_delay = 1.5  # the first SMTP transaction is in flight when SIGTERM comes
    config = base_config(
        tmp_path, database_url, smtp_sink.port, delivery={"concurrency": 1, "poll_seconds": 0.2}
    )
    path = write_config(tmp_path / "notifyd.toml", config)
    daemon = await spawn_daemon(path)
    for number in range(3):
        event = sample_event("account.created", f"acc-{number}", email=f"u{number}@client.example")
        assert (await _post(daemon, "billing", event, BILLING_SECRET))[0] == 202
    async with asyncio.timeout(WAIT):
        while smtp_sink.data_commands == 0:
            await asyncio.sleep(0.02)
    daemon.process.send_signal(stop_signal)
    assert await daemon.wait_exit() == 0
    # The transaction in flight was finished and recorded, the others handed back.
    assert len(smtp_sink.messages) == 1
    states = await db.fetch("SELECT state, count(*) AS n FROM notices GROUP BY state")
    assert {row["state"]: row["n"] for row in states} == {"sent": 1, "queued": 2}

    smtp_sink.data_delay = 0
    restarted = await spawn_daemon(path)
    await smtp_sink.wait_for(3)
    # None left to send; the stop lets a send in progress finish, so the sink's count
    # after it is final, a duplicate included.
    settled = [row["state"] for row in await settled_notices(db)]
    restarted.process.send_signal(signal.SIGTERM)
    assert await restarted.wait_exit() == 0
    assert settled == ["sent"] * 3
    recipients = sorted(str(message["To"]) for message in smtp_sink.messages)
    assert recipients == [f"u{n}@client.example" for n in range(3)]


async def test_sighup_applies_a_valid_file_and_keeps_the_old_config_on_a_broken_one(
    tmp_path: Path, database_url: str
) -> None:
    config = base_config(tmp_path, database_url, None)
    path = write_config(tmp_path / "notifyd.toml", config)
    daemon = await spawn_daemon(path)
    try:
        event = sample_event("account.created", "acc-1")
        assert (await _post(daemon, "billing", event, OTHER_SECRET))[0] == 401

        # A valid change (secret rotation) takes effect without a restart.
        config["sources.billing"]["secrets"] = [BILLING_SECRET, OTHER_SECRET]
        write_config(path, config)
        daemon.process.send_signal(signal.SIGHUP)
        await daemon.wait_log("config reloaded")
        assert (await _post(daemon, "billing", event, OTHER_SECRET))[0] == 202

        # A broken file is refused and logged; the running config stays.
        config["smtp"]["port"] = "twenty-five"
        write_config(path, config)
        daemon.process.send_signal(signal.SIGHUP)
        refused = await daemon.wait_log("reload refused: config invalid, keeping the running one")
        assert any("[smtp] port" in problem for problem in refused["problems"])
        assert (await _post(daemon, "billing", event, OTHER_SECRET))[0] == 202
        assert (await _post(daemon, "pbx", sample_event("call.missed", "a"), PBX_SECRET))[0] == 202

        # Saved by an editor in Latin-2: refused the same way, not a reload that never ends.
        config["smtp"]["port"] = 25
        write_config(path, config)
        path.write_bytes(path.read_bytes() + "# Notificări\n".encode("iso-8859-2"))
        daemon.process.send_signal(signal.SIGHUP)
        refusals = daemon.events("reload refused: config invalid, keeping the running one")

        async def second_refusal() -> list[str] | None:
            now = daemon.events("reload refused: config invalid, keeping the running one")
            return now[-1]["problems"] if len(now) > len(refusals) else None

        problems = await eventually(second_refusal, "the Latin-2 file's refusal")
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"file: {_NOT_UTF8}"), problems
        assert (await _post(daemon, "billing", event, OTHER_SECRET))[0] == 202
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0


async def test_logs_carry_no_email_addresses_or_phone_numbers(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    path = write_config(
        tmp_path / "notifyd.toml", base_config(tmp_path, database_url, smtp_sink.port)
    )
    daemon = await spawn_daemon(path)
    try:
        created = sample_event("account.created", "acc-p", email="private.person@client.example")
        missed = sample_event("call.missed", "acc-p", caller_number="+40721999888")
        assert (await _post(daemon, "billing", created, BILLING_SECRET))[0] == 202
        assert (await _post(daemon, "pbx", missed, PBX_SECRET))[0] == 202
        await smtp_sink.wait_for(2)
        await daemon.wait_log("delivery")
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    text = "\n".join(str(line) for line in daemon.lines)
    assert "private.person@client.example" not in text
    assert "40721999888" not in text
    assert all("request_id" in line for line in daemon.events("event stored"))


def test_check_config_names_every_bad_key(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "bad.toml",
        {
            "smtp": {"port": "25", "security": "ssl"},
            "sources.pbx": {"secrets": ["not-a-secret"], "allow_from": ["10.0.0.300/8"]},
            "defaults": {"timezone": "Mars/Olympus", "colour": "blue"},
        },
    )
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 78
    for expected in (
        "[smtp] port",
        "[smtp] security",
        "[sources.pbx] secrets[0]",
        "[sources.pbx] allow_from[0]",
        "[defaults] timezone",
        "[defaults] colour: unknown key",
    ):
        assert expected in result.stderr
    assert str(path) in result.stderr

    good = write_config(tmp_path / "good.toml", {"sources.pbx": {"secrets": [PBX_SECRET]}})
    result = _cli("check-config", "--config", str(good))
    assert result.returncode == 0, result.stderr


def test_version_is_printed() -> None:
    result = _cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("notifyd ")


async def test_simulate_posts_a_signed_sample_to_the_running_daemon(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    config = base_config(tmp_path, database_url, None)
    path = write_config(tmp_path / "notifyd.toml", config)
    daemon = await spawn_daemon(path)
    try:
        url = daemon.base_url
        result = await asyncio.to_thread(
            _cli, "simulate", "account.created", "--config", str(path), "--url", url
        )
        assert result.returncode == 0, result.stderr
        assert "-> 202" in result.stdout
        result = await asyncio.to_thread(
            _cli, "simulate", "call.missed", "--config", str(path), "--url", url
        )
        assert "-> 202" in result.stdout
        async with asyncio.timeout(WAIT):
            while await db.fetchval("SELECT count(*) FROM notices WHERE state = 'sent'") < 2:
                await asyncio.sleep(0.1)
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    outbox = sorted((tmp_path / "state" / "outbox").glob("*.eml"))
    assert len(outbox) == 2


async def test_without_database_url_it_runs_an_embedded_postgresql_and_writes_eml(
    tmp_path: Path, state: Path
) -> None:
    config = base_config(tmp_path, "", None)
    config["daemon"]["state_dir"] = str(state)
    path = write_config(tmp_path / "notifyd.toml", config)
    daemon = await spawn_daemon(path, timeout=60)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
            session.get(f"{daemon.base_url}/readyz") as response,
        ):
            assert response.status == 200
        event = sample_event("account.created", "acc-e", email="embedded@client.example")
        assert (await _post(daemon, "billing", event, BILLING_SECRET))[0] == 202
        async with asyncio.timeout(WAIT):
            while not list((state / "outbox").glob("*.eml")):
                await asyncio.sleep(0.1)
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit(timeout=60) == 0
    assert (state / "pgdata" / "PG_VERSION").exists()
    # The embedded server stopped with the daemon.
    assert not (state / "pgdata" / "postmaster.pid").exists()
    eml = next((state / "outbox").glob("*.eml")).read_text()
    assert "embedded@client.example" in eml


async def test_systemd_hears_ready_watchdog_and_stopping(tmp_path: Path, database_url: str) -> None:
    import os
    import socket

    path = write_config(tmp_path / "notifyd.toml", base_config(tmp_path, database_url, None))
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.setblocking(False)
    heard: list[str] = []
    loop = asyncio.get_running_loop()
    os.environ["NOTIFY_SOCKET"] = address
    os.environ["WATCHDOG_USEC"] = "400000"  # the daemon should ping every 0.2 s
    try:
        daemon = await spawn_daemon(path)
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    try:
        async with asyncio.timeout(WAIT):
            while sum("WATCHDOG=1" in m for m in heard) < 2:
                heard.append((await loop.sock_recv(listener, 4096)).decode())
        daemon.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT):
            while not any("STOPPING=1" in m for m in heard):
                heard.append((await loop.sock_recv(listener, 4096)).decode())
        assert await daemon.wait_exit() == 0
    finally:
        listener.close()
    assert any("READY=1" in m for m in heard)
    first_ready = next(i for i, m in enumerate(heard) if "READY=1" in m)
    assert first_ready < next(i for i, m in enumerate(heard) if "STOPPING=1" in m)


def test_shipped_configs_pass_check_config() -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("notifyd.example.toml", "notifyd.dev.toml"):
        result = _cli("check-config", "--config", str(root / "config" / name))
        assert result.returncode == 0, result.stderr


def test_systemd_unit_is_notify_type_reloadable_and_hardened() -> None:
    unit = (Path(__file__).resolve().parents[2] / "systemd" / "notifyd.service").read_text()
    settings = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in unit.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert settings["Type"] == "notify"
    assert "WatchdogSec" in settings
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["ReadWritePaths"] == "/var/lib/notifyd"
    assert settings["PrivateTmp"] == "yes"
    assert settings["ProtectHome"] == "yes"
    assert settings["User"] == "notifyd"
    assert settings["CapabilityBoundingSet"] == ""
    assert settings["AmbientCapabilities"] == ""
