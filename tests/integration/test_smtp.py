"""SMTP as operators run it: STARTTLS, implicit TLS, AUTH, reused connections, a relay
that is down for a while."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
    smtp_server,
)
from tests.integration.smtp_support import auth_relay, certificates


def _starttls_config(
    tmp_path: Path, database_url: str, port: int, ca_file: Path, password: str
) -> dict[str, dict[str, Any]]:
    smtp = {
        "security": "starttls",
        "username": "notifyd",
        "password": password,
        "ca_file": str(ca_file),
    }
    return base_config(tmp_path, database_url, port, smtp=smtp)


async def test_starttls_with_auth_against_a_private_ca(tmp_path: Path, database_url: str) -> None:
    relay, accounts, ca_file = auth_relay(tmp_path, "s3cret-relay-pass")
    async with relay as sink:
        config = _starttls_config(tmp_path, database_url, sink.port, ca_file, "s3cret-relay-pass")
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            event = sample_event("account.created", "acc-1", email="tls@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
            await sink.wait_for(1)
    # The server refuses MAIL before STARTTLS and AUTH, so arriving proves both happened.
    assert accounts.logins == ["notifyd"]


async def test_implicit_tls(tmp_path: Path, database_url: str) -> None:
    server_context, ca_file = certificates(tmp_path)
    async with smtp_server(SmtpSink(), ssl=server_context) as sink:
        config = base_config(
            tmp_path, database_url, sink.port, smtp={"security": "tls", "ca_file": str(ca_file)}
        )
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            event = sample_event("account.created", "acc-1", email="tls@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
            messages = await sink.wait_for(1)
    assert messages[0]["To"] == "tls@client.example"


async def test_untrusted_relay_certificate_is_not_used(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    server_context, _ = certificates(tmp_path)
    async with smtp_server(SmtpSink(), ssl=server_context) as sink:
        config = base_config(tmp_path, database_url, sink.port, smtp={"security": "tls"})
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            event = sample_event("account.created", "acc-1", email="tls@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
            async with asyncio.timeout(10):
                while not await db.fetchval("SELECT last_error FROM notices"):
                    await asyncio.sleep(0.05)
        assert sink.messages == []
    row = await db.fetchrow("SELECT state, last_error FROM notices")
    assert row is not None
    assert row["state"] in ("queued", "sending")  # kept for retry, never sent in clear
    assert "certificate" in row["last_error"].lower()


async def test_wrong_relay_password_keeps_notices_queued(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    relay, _accounts, ca_file = auth_relay(tmp_path, "right")
    async with relay as sink:
        config = _starttls_config(tmp_path, database_url, sink.port, ca_file, "wrong")
        # The refused login opens the circuit breaker; a short pause lets it try again.
        config["delivery"]["breaker_cooldown_seconds"] = 0.3
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            event = sample_event("account.created", "acc-1", email="auth@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
            async with asyncio.timeout(10):
                while not await db.fetchval("SELECT attempts >= 2 FROM notices"):
                    await asyncio.sleep(0.05)
            async with daemon.session.get(f"{daemon.admin_url}/metrics") as response:
                metrics = await response.text()
    row = await db.fetchrow("SELECT state, last_error FROM notices")
    assert row is not None
    assert row["state"] != "failed"
    assert row["last_error"].startswith("535")
    assert sink.messages == []
    assert "notifyd_delivery_paused 1.0" in metrics


async def test_connections_are_reused_across_messages(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    config = base_config(
        tmp_path, database_url, smtp_sink.port, delivery={"concurrency": 1}, smtp={"pool_size": 1}
    )
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        for n in range(6):
            event = sample_event("account.created", f"acc-{n}", email=f"r{n}@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        await smtp_sink.wait_for(6)
    assert smtp_sink.connections == 1


async def test_relay_down_then_up_delivers_after_retries(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    with socket.socket() as probe:  # a port with nothing behind it, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = base_config(tmp_path, database_url, port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        event = sample_event("account.created", "acc-1", email="later@client.example")
        assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202
        async with asyncio.timeout(10):
            while not await db.fetchval("SELECT attempts >= 2 FROM notices"):
                await asyncio.sleep(0.05)
        assert "connection" in await db.fetchval("SELECT last_error FROM notices")
        async with smtp_server(SmtpSink(), port=port) as sink:
            await sink.wait_for(1)
            async with asyncio.timeout(10):
                while await db.fetchval("SELECT state FROM notices") != "sent":
                    await asyncio.sleep(0.05)
    assert len(sink.messages) == 1


async def test_reload_switches_to_a_new_relay_without_a_restart(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    from tests.conftest import write_config

    config = base_config(tmp_path, database_url, smtp_sink.port)
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon, smtp_server(SmtpSink()) as new_relay:
        first = sample_event("account.created", "acc-1", email="old@client.example")
        assert (await daemon.post("billing", first, BILLING_SECRET))[0] == 202
        await smtp_sink.wait_for(1)

        config["smtp"]["port"] = new_relay.port
        write_config(settings.path, config)
        assert await daemon.daemon.reload()
        second = sample_event("account.created", "acc-2", email="new@client.example")
        assert (await daemon.post("billing", second, BILLING_SECRET))[0] == 202
        messages = await new_relay.wait_for(1)
    assert messages[0]["To"] == "new@client.example"
    assert len(smtp_sink.messages) == 1
