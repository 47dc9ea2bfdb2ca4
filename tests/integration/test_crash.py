"""At-least-once across crashes (issue 5): a burst of 2,000 notices, the daemon killed
with SIGKILL three times while it delivers and started again. Afterwards every notice was
delivered, and the only duplicates are transactions cut off between the SMTP server's 250
and our commit: each duplicate is the last message a killed daemon's connection had
accepted. Counted from the SMTP server's own log."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import OffersPipelining, spawn_daemon, write_config
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import broadcast

NOTICES = 2000
KILL_AFTER = (300, 900, 1500)  # messages accepted by the server before each SIGKILL


@dataclass
class LoggingSink(OffersPipelining):
    """An SMTP server that logs, per connection, every message it accepted."""

    port: int = 0
    # (connection number, Message-ID) in the order the server answered 250 to DATA.
    accepted: list[tuple[int, str]] = field(default_factory=list)
    quit_connections: set[int] = field(default_factory=set)
    connections: int = 0
    # As Postfix does: then each connection has the next message written behind the one
    # waiting for its 250 (`pipelined`), and the bound must still hold.
    pipelining: bool = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.002)  # a relay that takes a moment: the kills land mid-send
        content = envelope.original_content or b""
        message_id = ""
        for line in content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
                break
        self.accepted.append((getattr(session, "number", -1), message_id))
        return "250 2.0.0 Ok: queued"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quit_connections.add(getattr(session, "number", -1))
        return "221 Bye"


async def serve(sink: LoggingSink) -> asyncio.Server:
    def connection() -> SMTP:
        sink.connections += 1
        number = sink.connections

        class Numbered(SMTP):
            def _create_session(self) -> Session:
                session = super()._create_session()
                session.number = number  # type: ignore[attr-defined]
                return session

        return Numbered(sink, hostname="sink.test")

    server = await asyncio.get_running_loop().create_server(connection, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    return server


async def wait_accepted(sink: LoggingSink, count: int, timeout: float = 90) -> None:
    async with asyncio.timeout(timeout):
        while len(sink.accepted) < count:
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("pipelining", [False, True], ids=["plain", "pipelining"])
async def test_three_sigkills_lose_nothing_and_duplicate_only_cut_off_transactions(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, pipelining: bool
) -> None:
    sink = LoggingSink(pipelining=pipelining)
    server = await serve(sink)
    await db.execute(
        """INSERT INTO subscribers (account_id, email)
           SELECT 'acc-' || lpad(g::text, 5, '0'), 'user' || g || '@client.example'
           FROM generate_series(1, $1) AS g""",
        NOTICES,
    )
    config: dict[str, Any] = admin_config(tmp_path, database_url, sink.port)
    # Short leases: a killed host's claims come back within a second, not thirty.
    config["delivery"].update(lease_seconds=1, poll_seconds=0.2, concurrency=8, batch_size=20)
    config["broadcasts"] = {"batch_size": 500}
    path = write_config(tmp_path / "notifyd.toml", config)
    kills = 0
    try:
        daemon = await spawn_daemon(path)
        await broadcast(daemon)
        for threshold in KILL_AFTER:
            await wait_accepted(sink, threshold)
            os.kill(daemon.process.pid, signal.SIGKILL)
            await daemon.wait_exit()
            kills += 1
            daemon = await spawn_daemon(path)
        async with asyncio.timeout(120):
            while await db.fetchval("SELECT count(*) FROM notices WHERE state <> 'sent'"):
                await asyncio.sleep(0.2)
        daemon.process.send_signal(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    finally:
        if daemon.process.returncode is None:
            daemon.process.kill()
        server.close()
        await server.wait_closed()

    expected = {row["message_id"] for row in await db.fetch("SELECT message_id FROM notices")}
    delivered = Counter(message_id for _, message_id in sink.accepted)
    duplicates = {message_id: n for message_id, n in delivered.items() if n > 1}
    # What a killed daemon may not have recorded: the last message each of its connections
    # had accepted when the connection died without QUIT.
    last_on_connection: dict[int, str] = {}
    for connection, message_id in sink.accepted:
        last_on_connection[connection] = message_id
    cut_off = {
        message_id
        for connection, message_id in last_on_connection.items()
        if connection not in sink.quit_connections
    }
    lost = len(expected - set(delivered))
    extra = sum(n - 1 for n in duplicates.values())
    print(
        f"\ncrash test: {NOTICES} notices, {kills} SIGKILLs, {len(sink.accepted)} accepted, "
        f"lost {lost}, duplicated {extra} (transactions cut off: {len(cut_off)})"
    )
    assert kills == 3
    assert len(expected) == NOTICES
    assert set(delivered) == expected  # nothing lost, nothing foreign
    assert all(n == 2 for n in duplicates.values())  # never more than one extra copy
    assert set(duplicates) <= cut_off  # every duplicate is a transaction cut off by a kill
