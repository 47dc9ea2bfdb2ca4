"""An admin JSON body over 1 MiB (a file sent to the wrong route) is answered 413 in the
documented error format before it is read, with or without a Content-Length, and changes
nothing: read whole, a 200 MB body took the daemon from 110 to 500 MB, and up to 1 GiB
was taken, beside the webhooks it serves."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, Running, load_config, running_daemon
from tests.integration.admin_support import OPS_TOKEN, admin_config

SUBSCRIBER = "/v1/admin/subscribers/acc-1"


async def chunks(total: int) -> AsyncIterator[bytes]:
    """A JSON body sent chunked (no Content-Length), as a streaming client sends it."""
    yield b'{"name": "'
    for _ in range(total // 65536):
        yield b"a" * 65536
    yield b'"}'


async def patch(daemon: Running, body: io.BytesIO | AsyncIterator[bytes]) -> tuple[int, object]:
    headers = {"Authorization": f"Bearer {OPS_TOKEN}", "Content-Type": "application/json"}
    url = f"{daemon.admin_url}{SUBSCRIBER}"
    async with daemon.session.patch(url, data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_a_json_body_over_a_mebibyte_is_refused_unread(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        before = await db.fetchrow("SELECT * FROM subscribers WHERE account_id = 'acc-1'")
        huge = b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}'
        sized = await patch(daemon, io.BytesIO(huge))
        streamed = await patch(daemon, chunks(2 * 1024 * 1024))
        # Just under the cap is read and judged as before.
        under = b'{"name": "' + b"a" * (1024 * 1024 - 100) + b'"}'
        near = await patch(daemon, io.BytesIO(under))
        async with daemon.session.get(f"{daemon.admin_url}/openapi.json") as response:
            document = await response.json()
    after = await db.fetchrow("SELECT * FROM subscribers WHERE account_id = 'acc-1'")
    expected = {"error": "body_too_large", "detail": "the body is over 1 MiB (1048576 bytes)"}
    assert sized == (413, expected)
    assert streamed == (413, expected)
    assert near[0] == 422
    assert near[1] == {
        "error": "invalid_request",
        "detail": "the request body is invalid",
        "fields": {"name": "String should have at most 200 characters"},
    }
    assert after == before
    answers = document["paths"]["/v1/admin/subscribers/{account_id}"]["patch"]["responses"]
    assert "413" in answers
