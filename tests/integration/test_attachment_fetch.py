"""fetch() against a local aiohttp server standing in for the PBX that offers files by URL."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from notifyd.catalogue.samples import sample_wav
from notifyd.delivery.fetching import FetchError, fetch

ALLOWED = ("127.0.0.1",)
LIMIT = 64 * 1024
WAIT = 10.0  # seconds any single wait in a test may take before it fails
CHUNK = 16 * 1024
STREAMED = 64 * 1024 * 1024  # what the chunked handler would send if nobody stopped reading


@dataclass
class Pbx:
    """What the PBX stand-in saw: every request path, and how much the chunked handler sent."""

    port: int = 0
    requests: list[str] = field(default_factory=list)
    streamed: int = 0
    stream_done: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


PBX = web.AppKey("pbx", Pbx)


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[PBX].requests.append(request.path)
    return await handler(request)


async def recording(request: web.Request) -> web.Response:
    return web.Response(body=sample_wav(), content_type="audio/wav")


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="no")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(WAIT)
    return web.Response(body=sample_wav())


async def big(request: web.Request) -> web.StreamResponse:
    # Announces more than the limit, sends a little, then stalls: a client that waited for the
    # body would time out instead of refusing at once.
    response = web.StreamResponse()
    response.content_length = LIMIT + 1
    await response.prepare(request)
    await response.write(bytes(1024))
    await asyncio.sleep(WAIT)
    return response


async def chunked(request: web.Request) -> web.StreamResponse:
    pbx = request.app[PBX]
    response = web.StreamResponse()
    response.enable_chunked_encoding()  # no Content-Length: only counting can stop it
    await response.prepare(request)
    try:
        while pbx.streamed < STREAMED:
            await response.write(bytes(CHUNK))
            pbx.streamed += CHUNK
    except ConnectionError:
        pass  # the client went away, as it should
    finally:
        pbx.stream_done.set()
    return response


async def redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["to"])


async def loop(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.path)


@pytest.fixture
async def pbx() -> AsyncIterator[Pbx]:
    app = web.Application(middlewares=[record])
    app[PBX] = state = Pbx()
    app.router.add_get("/recordings/msg0001.wav", recording)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state.port = server.port or 0
    try:
        yield state
    finally:
        await server.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, and nobody else takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def get(
    url: str,
    *,
    allow_hosts: tuple[str, ...] = ALLOWED,
    max_bytes: int = LIMIT,
    timeout_seconds: float = WAIT,
) -> bytes:
    return await fetch(
        url,
        allow_hosts=allow_hosts,
        max_bytes=max_bytes,
        timeout_seconds=timeout_seconds,
    )


async def test_a_recording_on_an_allowed_host_is_fetched(pbx: Pbx) -> None:
    assert await get(pbx.url("/recordings/msg0001.wav")) == sample_wav()
    assert pbx.requests == ["/recordings/msg0001.wav"]


async def test_a_file_exactly_at_the_limit_is_fetched(pbx: Pbx) -> None:
    wav = sample_wav()
    assert await get(pbx.url("/recordings/msg0001.wav"), max_bytes=len(wav)) == wav


async def test_not_found_is_permanent(pbx: Pbx) -> None:
    with pytest.raises(FetchError, match="answered 404") as failed:
        await get(pbx.url("/status/404"))
    assert failed.value.transient is False


@pytest.mark.parametrize("code", [500, 502, 503, 429, 408])
async def test_server_trouble_and_rate_limits_are_transient(pbx: Pbx, code: int) -> None:
    with pytest.raises(FetchError, match=f"answered {code}") as failed:
        await get(pbx.url(f"/status/{code}"))
    assert failed.value.transient is True


@pytest.mark.parametrize("code", [400, 401, 403, 410])
async def test_other_client_errors_are_permanent(pbx: Pbx, code: int) -> None:
    with pytest.raises(FetchError) as failed:
        await get(pbx.url(f"/status/{code}"))
    assert failed.value.transient is False


async def test_a_slow_pbx_times_out_as_transient(pbx: Pbx) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"within 0\.3 seconds") as failed:
        await get(pbx.url("/slow"), timeout_seconds=0.3)
    assert failed.value.transient is True
    assert time.monotonic() - started < WAIT / 2


async def test_a_body_over_the_limit_is_refused_by_its_content_length(pbx: Pbx) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match="larger than 64 KiB") as failed:
        await get(pbx.url("/big"))
    assert failed.value.transient is False
    assert time.monotonic() - started < WAIT / 2


async def test_a_chunked_body_over_the_limit_stops_being_read(pbx: Pbx) -> None:
    with pytest.raises(FetchError, match="larger than 64 KiB") as failed:
        await get(pbx.url("/chunked"))
    assert failed.value.transient is False
    # The connection was closed: the PBX could not push the rest (socket buffers hold a few MiB).
    async with asyncio.timeout(WAIT):
        await pbx.stream_done.wait()
    assert pbx.streamed < STREAMED // 4


async def test_a_redirect_on_the_same_host_is_followed(pbx: Pbx) -> None:
    url = pbx.url("/redirect?to=/recordings/msg0001.wav")
    assert await get(url) == sample_wav()
    assert pbx.requests == ["/redirect", "/recordings/msg0001.wav"]


async def test_a_redirect_to_a_host_not_allowed_is_refused(pbx: Pbx) -> None:
    # localhost is this same server under a name the allowlist does not hold.
    elsewhere = pbx.url("/recordings/msg0001.wav", host="localhost")
    with pytest.raises(FetchError, match="not allowed") as failed:
        await get(pbx.url(f"/redirect?to={elsewhere}"))
    assert failed.value.transient is False
    assert pbx.requests == ["/redirect"]


async def test_redirects_are_followed_at_most_three_times(pbx: Pbx) -> None:
    with pytest.raises(FetchError, match="more than 3 redirects") as failed:
        await get(pbx.url("/loop"))
    assert failed.value.transient is False
    assert pbx.requests == ["/loop"] * 4


@pytest.mark.parametrize("allow_hosts", [(), ("pbx.example",), ("10.0.0.0/8",)])
async def test_a_host_not_allowed_is_refused_without_connecting(
    pbx: Pbx, allow_hosts: tuple[str, ...]
) -> None:
    with pytest.raises(FetchError, match="not allowed") as failed:
        await get(pbx.url("/recordings/msg0001.wav"), allow_hosts=allow_hosts)
    assert failed.value.transient is False
    assert pbx.requests == []


async def test_userinfo_cannot_smuggle_another_host(pbx: Pbx) -> None:
    url = f"http://pbx.example@localhost:{pbx.port}/recordings/msg0001.wav"
    with pytest.raises(FetchError, match="not allowed"):
        await get(url, allow_hosts=("pbx.example", "127.0.0.1"))
    assert pbx.requests == []


async def test_a_refused_connection_is_transient(closed_port: int) -> None:
    with pytest.raises(FetchError) as failed:
        await get(f"http://127.0.0.1:{closed_port}/recordings/msg0001.wav")
    assert failed.value.transient is True
