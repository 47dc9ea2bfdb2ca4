"""A URL attachment is fetched from the PBX that posted the webhook, with no extra config,
unless the PBX posts from loopback (a reverse proxy on this host): then only an address the
operator lists is fetched from."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import itertools
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web

from notifyd.catalogue.samples import sample_event, sample_wav
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
)
from tests.integration.queue_support import settled_notices


def network_address() -> str:
    """This host's address on its network (not loopback), or skip the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            # A datagram socket's connect only picks a route and a source address: nothing is sent.
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("this host has no network address besides loopback")
        address = str(probe.getsockname()[0])
    if ipaddress.ip_address(address).is_loopback:
        pytest.skip("this host has no network address besides loopback")
    return address


@pytest.fixture
def pbx_host(request: pytest.FixtureRequest) -> str:
    """Where the PBX posts from and serves files: loopback, unless a test asks for "network"."""
    return network_address() if getattr(request, "param", "") == "network" else "127.0.0.1"


@pytest.fixture
async def pbx_files(pbx_host: str) -> AsyncIterator[tuple[str, list[str]]]:
    """The PBX's file server, on the address that posts the webhooks."""
    requests: list[str] = []

    async def voicemail(request: web.Request) -> web.Response:
        requests.append(request.path)
        return web.Response(body=sample_wav(), content_type="audio/x-wav")

    app = web.Application()
    app.router.add_get("/vm/{name}", voicemail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, pbx_host, 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://{pbx_host}:{port}", requests
    await runner.cleanup()


def voicemail_by_url(url: str) -> dict[str, object]:
    audio = {"filename": "msg0007.wav", "content_type": "audio/wav", "url": url}
    return sample_event("voicemail.received", "acc-1", audio=audio)


@pytest.mark.parametrize("pbx_host", ["network"], indirect=True)
async def test_audio_url_on_the_posting_pbx_is_fetched_and_attached(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    pbx_files: tuple[str, list[str]],
    pbx_host: str,
) -> None:
    base, requests = pbx_files
    # The daemon listens on the same network address, so the webhook comes from it.
    config = base_config(tmp_path, database_url, smtp_sink.port, http={"host": pbx_host})
    async with running_daemon(load_config(tmp_path, config)) as local:
        daemon = dataclasses.replace(local, base_url=f"http://{pbx_host}:{local.daemon.port}")
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


async def test_a_pbx_posting_from_loopback_is_fetched_from_only_where_listed(
    tmp_path: Path,
    database_url: str,
    smtp_sink: SmtpSink,
    pbx_files: tuple[str, list[str]],
) -> None:
    # Behind a reverse proxy on this host every sender is 127.0.0.1: that vouches for nothing
    # (test_attachments_e2e.py shows the refusal), the operator lists the PBX's address and port.
    base, requests = pbx_files
    config = base_config(
        tmp_path,
        database_url,
        smtp_sink.port,
        attachments={"fetch_allow_hosts": [base.removeprefix("http://")]},
    )
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        status, _ = await daemon.post("pbx", voicemail_by_url(f"{base}/vm/7"), PBX_SECRET)
        messages = await smtp_sink.wait_for(2)
    assert status == 202
    assert requests == ["/vm/7"]
    assert len(list(messages[1].iter_attachments())) == 1


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
        # The fetch is refused, and the file marked failed, before the email is made; once
        # no notice is left to send, no later attempt can fetch it.
        states = [row["state"] for row in await settled_notices(db)]
    assert status == 202
    assert states == ["sent", "sent"]
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
        attachments={"fetch_retry_seconds": 0.3, "fetch_allow_hosts": ["127.0.0.1"]},
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
