"""A URL attachment is fetched from the PBX that posted the webhook, with no extra config."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from notifyd.samples import sample_event, sample_wav
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
)


@pytest.fixture
async def pbx_files() -> AsyncIterator[tuple[str, list[str]]]:
    """The PBX's file server on loopback (the same address that posts the webhooks)."""
    requests: list[str] = []

    async def voicemail(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(body=sample_wav(), content_type="audio/x-wav")

    app = web.Application()
    app.router.add_get("/vm/{name}", voicemail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", requests
    await runner.cleanup()


def voicemail_by_url(url: str) -> dict[str, object]:
    audio = {"filename": "msg0007.wav", "content_type": "audio/wav", "url": url}
    return sample_event("voicemail.received", "acc-1", audio=audio)


async def test_audio_url_on_the_posting_pbx_is_fetched_and_attached(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    pbx_files: tuple[str, list[str]],
) -> None:
    base, requests = pbx_files
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        status, _ = await daemon.post("pbx", voicemail_by_url(f"{base}/vm/7"), PBX_SECRET)
        messages = await smtp_sink.wait_for(2)
    assert status == 202
    assert requests == ["/vm/7"]
    files = [part for part in messages[1].iter_attachments()]
    assert [(f.get_filename(), f.get_content_type()) for f in files] == [
        ("msg0007.wav", "audio/wav")
    ]
    assert files[0].get_content() == sample_wav()


async def test_a_url_elsewhere_is_not_fetched_and_the_email_says_so(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    db: asyncpg.Connection,
    pbx_files: tuple[str, list[str]],
) -> None:
    base, requests = pbx_files
    # Same server, but named by a host that is neither the sender nor allowlisted.
    elsewhere = base.replace("127.0.0.1", "localhost")
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        status, _ = await daemon.post("pbx", voicemail_by_url(f"{elsewhere}/vm/8"), PBX_SECRET)
        messages = await smtp_sink.wait_for(2)
        await asyncio.sleep(0.2)
    assert status == 202
    assert requests == []
    assert list(messages[1].iter_attachments()) == []
    text = messages[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "nu a putut fi" in text or "nu a putut" in text  # Romanian: could not be retrieved
    assert await db.fetchval("SELECT state FROM attachments") == "failed"


async def test_fetch_retries_follow_their_own_short_schedule(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    db: asyncpg.Connection,
) -> None:
    # A PBX file server that answers 503 twice, then serves the file.
    answers = [503, 503, 200]
    times: list[float] = []

    async def flaky(request: web.Request) -> web.Response:
        times.append(asyncio.get_running_loop().time())
        status = answers.pop(0)
        if status != 200:
            return web.Response(status=status)
        return web.Response(body=sample_wav(), content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/vm/{name}", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    # The notice back-off is an hour: only the fetch schedule (0.3 s, doubling) can be at work.
    config = base_config(
        tmp_path,
        database_url,
        smtp_sink.port,
        delivery={"retry_initial_seconds": 3600, "retry_max_seconds": 3600},
        attachments={"fetch_retry_seconds": 0.3},
    )
    try:
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
            await daemon.post("pbx", voicemail_by_url(f"{base}/vm/9"), PBX_SECRET)
            messages = await smtp_sink.wait_for(2)
    finally:
        await runner.cleanup()
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) == 3
    assert 0.25 <= gaps[0] < 2.0
    assert 0.5 <= gaps[1] < 3.0
    assert len(list(messages[1].iter_attachments())) == 1
    assert await db.fetchval("SELECT fetch_attempts FROM attachments") == 2
