"""Every line the daemon writes is JSON and masked, including what the libraries log
themselves: APScheduler's job errors, aiohttp's parser errors, tracebacks."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    PBX_SECRET,
    WAIT,
    Cluster,
    DaemonProcess,
    eventually,
    running_daemon,
    signed_request,
    spawn_daemon,
)
from tests.integration.admin_support import OPS_TOKEN
from tests.integration.daemon_support import post, settings_for, subscribe

pytestmark = pytest.mark.slow

ADDRESS = "ana.popescu@example.com"
NUMBER = "+40721555123"
UNICODE_ADDRESS = "іван@приклад.укр"
# What must not appear in any line, in any form: the address's local part, the number's
# digits (with or without the country code), and the local part of the Unicode address as
# text and as the UTF-8 bytes a bytes repr shows.
IN_CLEAR = [
    "ana.popescu",
    "40721555123",
    "0721555123",
    "іван",
    "".join(f"\\x{byte:02x}" for byte in "іван".encode()),
]


def _in_clear(line: dict[str, Any]) -> list[str]:
    text = json.dumps(line, ensure_ascii=False)
    return [fixture for fixture in IN_CLEAR if fixture in text]


async def _send_raw(daemon: DaemonProcess, request: bytes) -> bytes:
    """One request over a plain socket, as no HTTP client would send it; the answer."""
    async with asyncio.timeout(WAIT):
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        try:
            writer.write(request)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            await writer.wait_closed()


async def _lines_from(daemon: DaemonProcess, logger: str, count: int = 1) -> list[dict[str, Any]]:
    async def logged() -> list[dict[str, Any]]:
        found = [line for line in daemon.lines if line.get("logger") == logger]
        return found if len(found) >= count else []

    return await eventually(logged, f"{count} lines from {logger}")


async def _stop(daemon: DaemonProcess) -> None:
    daemon.process.send_signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0


async def test_every_line_is_json_and_masked_when_libraries_log_errors(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    # A subscriber whose missed calls wait for the hourly digest, and one held.
    settings = settings_for(tmp_path, database_url, None)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {"modes": {"calls": "hourly"}}, email=ADDRESS)
        await post(daemon, "call.missed", "acc-1", caller_number=NUMBER)
    # The hour has passed; and something in the database refuses the digest (a constraint
    # an operator added, say): the digest job fails, and PostgreSQL's error quotes the row,
    # address included. The job runs at start.
    held = await db.execute(
        "UPDATE notices SET due_at = now() - interval '1 minute' WHERE state = 'held'"
    )
    assert held == "UPDATE 1"
    await db.execute(
        "ALTER TABLE notices ADD CONSTRAINT no_digests CHECK (kind <> 'digest') NOT VALID"
    )

    process = await spawn_daemon(settings.path)
    try:
        [job_error] = await _lines_from(process, "apscheduler.executors.default")

        # aiohttp's parser refuses these and logs the offending bytes with a traceback.
        malformed = [
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Caller: {ADDRESS} {NUMBER}\x01\r\n\r\n",
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Caller {UNICODE_ADDRESS}\r\n\r\n",
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {NUMBER}\r\n\r\n",
            f"GET /\x01sip:{NUMBER[1:]}@pbx.example.com HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for request in malformed:
            assert (await _send_raw(process, request.encode())).startswith(b"HTTP/1.0 400")
        parser_errors = await _lines_from(process, "aiohttp.server", count=len(malformed))

        # A client may put anything in X-Request-Id: it is echoed as sent, logged masked.
        body, headers = signed_request(
            sample_event("call.missed", "acc-1", caller_number=NUMBER), PBX_SECRET
        )
        headers["X-Request-Id"] = f"{ADDRESS}/{NUMBER}"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
            session.post(
                f"{process.base_url}/v1/webhooks/pbx", data=body, headers=headers
            ) as response,
        ):
            assert response.status == 202
            assert response.headers["X-Request-Id"] == f"{ADDRESS}/{NUMBER}"
        stored = await process.wait_log("event stored")
    finally:
        if process.process.returncode is None:
            await _stop(process)

    assert stored["request_id"] == "a***@example.com/+********123"
    assert job_error["level"] == "error"
    assert "CheckViolationError" in job_error["exception"]
    assert "a***@example.com" in job_error["exception"]
    assert all("Traceback" in line["exception"] for line in parser_errors)
    assert [line["text"] for line in process.lines if line.get("event") == "raw"] == []
    assert {json.dumps(line): _in_clear(line) for line in process.lines if _in_clear(line)} == {}


async def test_the_admin_audit_line_names_the_token(tmp_path: Path, database_url: str) -> None:
    settings = settings_for(tmp_path, database_url, None)
    process = await spawn_daemon(settings.path)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
            session.get(
                f"{process.admin_url}/v1/admin/subscribers/acc-1",
                headers={"Authorization": f"Bearer {OPS_TOKEN}"},
            ) as response,
        ):
            assert response.status == 404
        audit = await process.wait_log("admin call")
    finally:
        await _stop(process)

    assert audit["token_name"] == "ops"
    assert all(OPS_TOKEN not in json.dumps(line) for line in process.lines)


async def test_the_embedded_postgresql_log_does_not_quote_rows(
    pg_cluster: Cluster, db: asyncpg.Connection
) -> None:
    # PostgreSQL writes every error to its own log, with a DETAIL that quotes the row or key
    # ("Failing row contains (..., ana@..., ...)"): the masker never sees that file.
    address = f"log-{uuid.uuid4().hex[:12]}@example.com"
    await db.execute("CREATE TABLE refused (email text CHECK (email NOT LIKE 'log-%'))")
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute("INSERT INTO refused VALUES ($1)", address)
    assert address in str(refused.value)  # the client is told; the log need not be
    server_log = pg_cluster.root / "postgres.log"

    async def logged() -> bool:
        return 'violates check constraint "refused_email_check"' in server_log.read_text()

    await eventually(logged, "the error in the server log")
    assert address not in server_log.read_text()
