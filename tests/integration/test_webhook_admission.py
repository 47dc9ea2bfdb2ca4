"""What a webhook must show before its body is read (SPEC §3): a known source, an allowed
sender, well-formed signature headers with a current timestamp, a JSON Content-Type, and
room under the in-flight cap. A request without them is answered before the sender has
sent its body, so unsigned uploads cost the daemon no memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    PBX_SECRET,
    WAIT,
    Running,
    base_config,
    eventually,
    load_config,
    running_daemon,
    signed_request,
)

ANNOUNCED = 25 * 1024 * 1024


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One HTTP/1.1 response off a raw socket (status, headers, Content-Length body)."""
    async with asyncio.timeout(WAIT):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(status, headers, body)


class HeldRequest:
    """A POST whose headers are sent at once and whose body only when the test says so."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send_part(self, part: bytes) -> None:
        self.writer.write(part)
        await self.writer.drain()

    async def send_body(self, body: bytes) -> Answer:
        self.writer.write(body)
        await self.writer.drain()
        return await read_answer(self.reader)

    async def answer_without_body(self, within: float = 5.0) -> Answer:
        """The answer the daemon gives while the body is still unsent (fails if none)."""
        try:
            async with asyncio.timeout(within):
                return await read_answer(self.reader)
        except TimeoutError:
            raise AssertionError("the daemon waited for the body before answering") from None

    async def close(self) -> None:
        self.writer.close()
        # The daemon may have reset a connection whose body it refused to read.
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(WAIT):
                await self.writer.wait_closed()


async def hold(daemon: Running, source: str, headers: dict[str, str], length: int) -> HeldRequest:
    port = int(daemon.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [
        f"POST /v1/webhooks/{source} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Length: {length}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    return HeldRequest(reader, writer)


async def until_held(daemon: Running, size: int, what: str) -> None:
    """Until the in-flight cap counts `size` bytes of bodies."""
    runtime = daemon.daemon.runtime
    assert runtime is not None

    async def counted() -> bool:
        return runtime.bodies.held == size

    await eventually(counted, what)


@pytest.fixture
async def daemon(tmp_path: Path, database_url: str) -> AsyncIterator[Running]:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as running:
        yield running


def capped_config(tmp_path: Path, database_url: str, **webhooks: Any) -> dict[str, dict[str, Any]]:
    """A daemon whose bodies are at most 4,096 bytes, 6,000 of them in flight at once: two
    bodies padded to 3,000 bytes fill it."""
    limits = {"max_body_bytes": 4096, "max_bytes_in_flight": 6000, **webhooks}
    return base_config(tmp_path, database_url, None, webhooks=limits)


def padded(event: dict[str, Any], size: int = 3000) -> bytes:
    body = json.dumps(event).encode()
    return body + b" " * (size - len(body))


def signed_headers(*, timestamp: datetime | None = None) -> dict[str, str]:
    _, headers = signed_request(b"{}", PBX_SECRET, timestamp=timestamp)
    return headers


async def test_unsigned_upload_is_refused_401_before_its_body_is_sent(daemon: Running) -> None:
    held = await hold(daemon, "pbx", {"Content-Type": "application/json"}, ANNOUNCED)
    try:
        answer = await held.answer_without_body()
    finally:
        await held.close()
    assert answer.status == 401
    assert "webhook-signature" in json.loads(answer.body)["detail"]


@pytest.mark.parametrize(
    "fault", ["stale timestamp", "malformed signature", "unknown source", "no content type"]
)
async def test_bad_headers_are_answered_before_the_body_is_sent(
    daemon: Running, fault: str
) -> None:
    source = "pbx"
    headers = signed_headers()
    expected = 401
    if fault == "stale timestamp":
        headers = signed_headers(timestamp=datetime.now(UTC) - timedelta(minutes=6))
    elif fault == "malformed signature":
        headers["webhook-signature"] = "v1,not base64!"
    elif fault == "unknown source":
        source, expected = "crm", 404
    elif fault == "no content type":
        del headers["Content-Type"]
        expected = 415
    held = await hold(daemon, source, headers, ANNOUNCED)
    try:
        answer = await held.answer_without_body()
    finally:
        await held.close()
    assert answer.status == expected


async def test_signed_webhook_without_content_type_is_415(
    daemon: Running, db: asyncpg.Connection
) -> None:
    body, headers = signed_request(sample_event("call.missed", "acc-1"), PBX_SECRET)
    del headers["Content-Type"]
    async with daemon.session.post(
        f"{daemon.base_url}/v1/webhooks/pbx",
        data=body,
        headers=headers,
        skip_auto_headers=["Content-Type"],
    ) as response:
        status, answer = response.status, await response.json()
    assert status == 415
    assert answer["error"] == "unsupported_media_type"
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_bodies_past_the_in_flight_cap_get_503_until_room_is_made(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    config = capped_config(tmp_path, database_url)
    settings = load_config(tmp_path, config)
    # Two bodies padded to 3,000 bytes each fill the 6,000 bytes allowed in flight.
    signed = [
        signed_request(padded(sample_event("call.missed", "acc-1", call_id=f"c-{n}")), PBX_SECRET)
        for n in range(3)
    ]
    bodies = [body for body, _ in signed]
    async with running_daemon(settings) as daemon:
        runtime = daemon.daemon.runtime
        assert runtime is not None
        first = await hold(daemon, "pbx", signed[0][1], 3000)
        second = await hold(daemon, "pbx", signed[1][1], 3000)
        # Bytes received are counted, not announced ones: all but the last byte of each.
        await first.send_part(bodies[0][:-1])
        await second.send_part(bodies[1][:-1])

        await until_held(daemon, 5998, "both bodies' bytes to be counted")
        third = await hold(daemon, "pbx", signed[2][1], 3000)
        refused = await third.answer_without_body()
        await third.close()
        accepted = [await first.send_body(bodies[0][-1:]), await second.send_body(bodies[1][-1:])]
        await first.close()
        await second.close()
        after = await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        held_after = runtime.bodies.held
    assert refused.status == 503
    assert refused.headers["retry-after"] == "5"
    assert [a.status for a in accepted] == [202, 202]
    assert after[0] == 202
    assert held_after == 0
    assert await db.fetchval("SELECT count(*) FROM events") == 3


async def test_a_chunked_body_past_the_in_flight_cap_gets_503(
    tmp_path: Path, database_url: str
) -> None:
    config = capped_config(tmp_path, database_url)
    settings = load_config(tmp_path, config)
    event = sample_event("call.missed", "acc-1")
    event["padding"] = "y" * 2500
    payload, headers = signed_request(event, PBX_SECRET)
    async with running_daemon(settings) as daemon:
        # Someone else's body, sent but for its last byte, holds 3,999 of the 6,000 bytes.
        other = await hold(daemon, "pbx", signed_headers(), 4000)
        await other.send_part(b" " * 3999)

        await until_held(daemon, 3999, "the other body's bytes to be counted")

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 1000):
                yield payload[start : start + 1000]

        async with daemon.session.post(
            f"{daemon.base_url}/v1/webhooks/pbx", data=chunks(), headers=headers
        ) as response:
            status = response.status
        await other.close()

        await until_held(daemon, 0, "every reservation to be released")
    assert status == 503


async def test_expect_100_continue_invites_only_a_body_whose_headers_pass(
    daemon: Running,
) -> None:
    # curl sends "Expect: 100-continue" before any body over 1 MiB, and sends the body only
    # when invited (or after a second): an unsigned one must get its 401 instead.
    unsigned = await hold(
        daemon, "pbx", {"Content-Type": "application/json", "Expect": "100-continue"}, ANNOUNCED
    )
    body, headers = signed_request(sample_event("call.missed", "acc-1"), PBX_SECRET)
    signed = await hold(daemon, "pbx", {**headers, "Expect": "100-continue"}, len(body))
    try:
        refused = await unsigned.answer_without_body()
        invited = await signed.answer_without_body()
        stored = await signed.send_body(body)
    finally:
        await unsigned.close()
        await signed.close()
    assert refused.status == 401
    assert invited.status == 100
    assert stored.status == 202


async def test_announced_bodies_never_sent_do_not_hold_the_cap(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    # Anyone can send signature headers and a Content-Length (the HMAC needs the body): five
    # idle connections announcing 25 MiB each used to hold the whole 100 MiB cap, and every
    # real webhook was answered 503 for as long as they stayed open.
    config = capped_config(tmp_path, database_url)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        idle = [await hold(daemon, "pbx", signed_headers(), 3000) for _ in range(5)]
        try:
            status, body = await daemon.post("pbx", sample_event("call.missed"), PBX_SECRET)
        finally:
            for request in idle:
                await request.close()
    assert (status, body["duplicate"]) == (202, False)
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_a_stalled_body_is_cut_with_408_and_its_room_given_back(
    tmp_path: Path, database_url: str
) -> None:
    config = capped_config(tmp_path, database_url, body_idle_seconds=1)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        runtime = daemon.daemon.runtime
        assert runtime is not None
        stalled = await hold(daemon, "pbx", signed_headers(), 3000)
        await stalled.send_part(b" " * 2999)

        await until_held(daemon, 2999, "the bytes received to be counted")
        # The last byte never comes: the answer arrives after a second of silence.
        answer = await stalled.answer_without_body(within=WAIT)
        await stalled.close()
        held_after = runtime.bodies.held
    assert answer.status == 408
    assert json.loads(answer.body)["error"] == "body_timeout"
    assert held_after == 0
