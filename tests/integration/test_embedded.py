"""The embedded PostgreSQL as an operator meets it: a second command beside the running
daemon, a server that dies, a long or odd state path, and other local users."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from notifyd.storage.embedded import POSTGRES_SYSTEM_USER, EmbeddedPostgres
from tests.conftest import (
    BILLING_SECRET,
    WAIT,
    DaemonProcess,
    base_config,
    signed_request,
    spawn_daemon,
    write_config,
)

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notifyd", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def initialised_state() -> Iterator[Path]:
    """A state folder as a daemon's first start leaves it before the server first starts:
    the cluster made by initdb, with its password set. initdb takes 2-6 s (most of it
    syncing its files to disk), and what the tests that copy it are about (a server killed
    or stopped, a second command beside the daemon) comes after it. initdb is still run by
    the tests of a new state folder, here and in test_service."""
    root = Path(tempfile.mkdtemp(prefix="ntfy-initialised-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "state" / "pgdata")
    server.initialise()
    server._require_password()
    yield root / "state"
    shutil.rmtree(root, ignore_errors=True)


def _embedded_config(tmp_path: Path, state: Path, initialised: Path) -> Path:
    """A config for the embedded PostgreSQL in `state`, a copy of `initialised`."""
    state.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(initialised, state, symlinks=True)
    # Each file keeps its owner: the server's user, when the tests run as root.
    for path in [state, *state.rglob("*")]:
        owner = (initialised / path.relative_to(state)).lstat()
        os.lchown(path, owner.st_uid, owner.st_gid)
    config = base_config(tmp_path, "", None)
    config["daemon"]["state_dir"] = str(state)
    return write_config(tmp_path / "notifyd.toml", config)


async def _status(daemon: DaemonProcess, path: str) -> int:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
        session.get(f"{daemon.base_url}{path}") as response,
    ):
        return response.status


async def _post_account(daemon: DaemonProcess, account: str) -> int:
    event = sample_event("account.created", account, email=f"{account}@client.example")
    body, headers = signed_request(event, BILLING_SECRET)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
        session.post(
            f"{daemon.base_url}/v1/webhooks/billing", data=body, headers=headers
        ) as response,
    ):
        return response.status


async def _until_status(daemon: DaemonProcess, path: str, wanted: int, timeout: float) -> None:
    seen: list[int] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                seen.append(await _status(daemon, path))
                if seen[-1] == wanted:
                    return
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"{path} never answered {wanted}: {seen[-20:]}") from None


async def _stop(daemon: DaemonProcess) -> int:
    if daemon.process.returncode is None:
        daemon.process.send_signal(signal.SIGTERM)
    return await daemon.wait_exit(timeout=60)


def _process_status(pid: int) -> dict[str, str]:
    status = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":", 1) for line in status.splitlines() if ":" in line)


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


async def test_migrate_and_check_config_beside_a_running_daemon_leave_its_database_alone(
    tmp_path: Path, state: Path, initialised_state: Path
) -> None:
    path = _embedded_config(tmp_path, state, initialised_state)
    daemon = await spawn_daemon(path, timeout=90)
    try:
        pid = _postmaster_pid(state / "pgdata")
        migrate = await asyncio.to_thread(_cli, "migrate", "--config", str(path))
        assert migrate.returncode == 0, migrate.stderr
        assert "schema at version" in migrate.stdout
        assert "embedded postgresql stopped" not in migrate.stderr
        check = await asyncio.to_thread(_cli, "check-config", "--config", str(path))
        assert check.returncode == 0, check.stderr
        # The same server still runs and the daemon still takes webhooks.
        assert _postmaster_pid(state / "pgdata") == pid
        assert await _status(daemon, "/readyz") == 200
        assert await _post_account(daemon, "acc-beside") == 202
    finally:
        assert await _stop(daemon) == 0
    assert not (state / "pgdata" / "postmaster.pid").exists()


async def test_commands_started_together_without_a_daemon_share_one_server_and_stop_it_last(
    tmp_path: Path, state: Path, initialised_state: Path
) -> None:
    """Two shells, no daemon: each command finds the server another is starting (it said
    "the database system is starting up" in a traceback), and the first to finish must not
    stop the server under the others; the last one out stops it."""
    path = _embedded_config(tmp_path, state, initialised_state)
    commands = [
        (["migrate"], 0),
        (["migrate", "--check"], 0),
        (["privacy", "restrict", "acc-none"], 67),
        (["privacy", "export", "acc-none"], 67),
        (["privacy", "lift", "acc-none"], 67),
    ]
    first = await asyncio.to_thread(_cli, "migrate", "--config", str(path))
    assert first.returncode == 0, first.stderr
    assert not (state / "pgdata" / "postmaster.pid").exists()
    for _ in range(2):
        results = await asyncio.gather(
            *(asyncio.to_thread(_cli, *args, "--config", str(path)) for args, _ in commands)
        )
        for (args, expected), result in zip(commands, results, strict=True):
            assert result.returncode == expected, (args, result.stderr)
            assert "Traceback" not in result.stderr, (args, result.stderr)
        assert not (state / "pgdata" / "postmaster.pid").exists()


async def test_a_second_run_on_the_same_state_folder_refuses_at_once(
    tmp_path: Path, state: Path, initialised_state: Path
) -> None:
    path = _embedded_config(tmp_path, state, initialised_state)
    daemon = await spawn_daemon(path, timeout=90)
    try:
        second = write_config(
            tmp_path / "second.toml",
            {**base_config(tmp_path, "", None), "daemon": {"state_dir": str(state)}},
        )
        started = time.monotonic()
        result = await asyncio.to_thread(_cli, "run", "--config", str(second))
        assert time.monotonic() - started < 20
        assert result.returncode == 69
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "state folder" in lines[0]
        assert str(state) in lines[0]
        assert await _status(daemon, "/readyz") == 200
        assert await _post_account(daemon, "acc-after-second") == 202
    finally:
        assert await _stop(daemon) == 0


async def test_a_port_in_use_fails_in_one_line_before_anything_starts(
    tmp_path: Path, state: Path
) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        config = base_config(tmp_path, "", None)
        config["daemon"]["state_dir"] = str(state)
        config["http"]["port"] = holder.getsockname()[1]
        path = write_config(tmp_path / "notifyd.toml", config)
        result = await asyncio.to_thread(_cli, "run", "--config", str(path))
    finally:
        holder.close()
    assert result.returncode == 69
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "in use" in result.stderr
    assert result.stdout == ""
    # Nothing touched: no database initialised, no job run.
    assert not (state / "pgdata").exists()


@pytest.mark.parametrize("state_path", ["short", "long"])
async def test_a_killed_embedded_postgresql_is_restarted_and_webhooks_resume(
    tmp_path: Path, state: Path, initialised_state: Path, state_path: str
) -> None:
    if state_path == "long":
        # Too long for a socket: the socket lives in a private temporary folder, which the
        # restarted server must use again (the pool's DSN names it).
        state = state / ("long " * 20).strip()
    path = _embedded_config(tmp_path, state, initialised_state)
    daemon = await spawn_daemon(path, timeout=90)
    try:
        assert await _post_account(daemon, "acc-before") == 202
        pgdata = state / "pgdata"
        os.kill(_postmaster_pid(pgdata), signal.SIGKILL)
        await _until_status(daemon, "/readyz", 503, timeout=WAIT)
        await _until_status(daemon, "/readyz", 200, timeout=60)
        async with asyncio.timeout(WAIT):
            while (status := await _post_account(daemon, "acc-after")) != 202:
                assert status == 503
                await asyncio.sleep(0.2)
        await daemon.wait_log("embedded postgresql restarted")
        outbox = state / "outbox"
        async with asyncio.timeout(WAIT):
            while len(list(outbox.glob("*.eml"))) < 2:
                await asyncio.sleep(0.1)
    finally:
        assert await _stop(daemon) == 0


@pytest.mark.parametrize("mode", ["fast", "smart"])
async def test_readyz_says_503_whenever_a_new_connection_cannot_be_had(
    tmp_path: Path, state: Path, initialised_state: Path, mode: str
) -> None:
    path = _embedded_config(tmp_path, state, initialised_state)
    daemon = await spawn_daemon(path, timeout=90)
    try:
        server = EmbeddedPostgres(state / "pgdata")
        # Without waiting: a smart shutdown lasts as long as sessions stay open.
        await asyncio.to_thread(
            server.run_as_server_user,
            ["pg_ctl", "-D", str(server.pgdata), "-m", mode, "-W", "stop"],
        )
        await _until_status(daemon, "/readyz", 503, timeout=WAIT)
        if mode == "smart":
            # A smart shutdown waits for every session to end, and the daemon's LISTEN
            # connection stays: the operator ends it with a fast one.
            await asyncio.to_thread(
                server.run_as_server_user,
                ["pg_ctl", "-D", str(server.pgdata), "-m", "fast", "-W", "stop"],
            )
        # Never a 500 while it goes down and comes back.
        statuses = set()
        async with asyncio.timeout(60):
            while (status := await _status(daemon, "/readyz")) != 200:
                statuses.add(status)
                await asyncio.sleep(0.1)
        assert statuses <= {503}
    finally:
        code = await _stop(daemon)
        assert code == 0, "\n".join(str(line) for line in daemon.lines[-80:])


async def test_a_long_odd_state_path_keeps_the_socket_private_and_asks_a_password(
    tmp_path: Path,
) -> None:
    state = tmp_path / ("a folder with spaces, #hash & ampersand, ăîșț " + "x" * 60) / "state"
    server = EmbeddedPostgres(state / "pgdata", durable=False)
    dsn = await server.start()
    try:
        assert len(str(state / "pgdata")) > 100
        mode = server.socket_dir.stat().st_mode & 0o777
        assert mode == 0o700, oct(mode)
        # The password works, and nothing else does, even on the socket.
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT current_user") == "postgres"
        await conn.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(host=str(server.socket_dir), user="postgres", password="x")
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(host=str(server.socket_dir), user="postgres")
        password_file = state / "postgres-password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        if os.geteuid() == 0:
            # As root the server runs as its own user and group, with no other group
            # (root's group would give it every root-group file on the machine).
            entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
            fields = _process_status(_postmaster_pid(server.pgdata))
            assert fields["Uid"].split()[0] == str(entry.pw_uid)
            assert fields["Gid"].split()[0] == str(entry.pw_gid)
            assert fields["Groups"].split() == []
            assert server.socket_dir.stat().st_uid == entry.pw_uid
    finally:
        await server.stop()
    assert not server.socket_dir.exists() or server.socket_dir == server.pgdata


async def test_a_cluster_made_with_trust_authentication_is_given_a_password(
    state: Path,
) -> None:
    """State folders made by earlier versions: initdb --auth=trust, no password file."""
    pgdata = state / "pgdata"
    server = EmbeddedPostgres(pgdata, durable=False)
    await asyncio.to_thread(server.initialise)
    (pgdata.parent / "postgres-password").unlink(missing_ok=True)
    (pgdata / "pg_hba.conf").write_text("local all all trust\n")
    dsn = await server.start()
    try:
        conn = await asyncpg.connect(dsn)
        await conn.close()
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(host=str(server.socket_dir), user="postgres")
    finally:
        await server.stop()
