"""The SSRF corpus: attachment URLs and redirects that must never reach a service on this host.

Real aiohttp servers on loopback: the PBX's file server (allowed only where a test lists it)
and a "secret" service standing for notifyd's own admin API or anything else bound to
loopback behind a reverse proxy. DNS cannot run here, so names go through a fake resolver
injected into fetch(); nothing else is faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from notifyd.catalogue.samples import sample_wav
from notifyd.delivery.fetching import FetchError, fetch

WAIT = 10.0  # seconds any single fetch in a test may take before it fails
LIMIT = 64 * 1024
# The PBX's name in the configuration: fetch_allow_hosts = ["pbx.internal.example"].
PBX_NAME = "pbx.internal.example"


@dataclass
class Server:
    """A loopback HTTP server that records every request path it answers."""

    port: int = 0
    requests: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def redirect(self, to: str) -> str:
        """A URL on this server that redirects to `to`."""
        return str(URL(self.url("/redirect")).with_query(to=to))


@contextlib.asynccontextmanager
async def serving(*hosts: str) -> AsyncIterator[Server]:
    """A server on the first host (port from the OS), also on the others at the same port."""
    state = Server()

    async def recording(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        return web.Response(body=sample_wav(), content_type="audio/wav")

    async def redirect(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/{tail:.*}", recording)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, hosts[0], 0)
        await site.start()
        state.port = runner.addresses[0][1]
        for host in hosts[1:]:
            # Another address of this host at the same port (IPv6 loopback): best effort, the
            # tests assert the refusal's reason, not only that nothing answered.
            with contextlib.suppress(OSError):
                await web.TCPSite(runner, host, state.port).start()
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def pbx() -> AsyncIterator[Server]:
    async with serving("127.0.0.1") as server:
        yield server


@pytest.fixture
async def other_pbx() -> AsyncIterator[Server]:
    async with serving("127.0.0.1") as server:
        yield server


@pytest.fixture
async def secret() -> AsyncIterator[Server]:
    """Any other service on loopback: notifyd's admin API, a database's HTTP port, ..."""
    async with serving("127.0.0.1", "::1") as server:
        yield server


class FakeDns(AbstractResolver):
    """Answers from a table, and counts the questions (what a hostile DNS server could do)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.questions: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.questions.append(host)
        addresses = self.answers.get(host.rstrip("."))
        if not addresses:
            raise OSError(f"no such host: {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


class RebindingDns(FakeDns):
    """The first answer is the checked one; every later answer points elsewhere."""

    def __init__(self, first: str, later: str) -> None:
        super().__init__({})
        self.first, self.later = first, later

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.answers[host.rstrip(".")] = [self.first if not self.questions else self.later]
        return await super().resolve(host, port, family)


async def get(
    url: str,
    *,
    allow_hosts: tuple[str, ...] = (PBX_NAME,),
    sender_hosts: tuple[str, ...] = (),
    resolver: AbstractResolver | None = None,
) -> bytes:
    return await fetch(
        url,
        allow_hosts=allow_hosts,
        sender_hosts=sender_hosts,
        max_bytes=LIMIT,
        timeout_seconds=WAIT,
        resolver=resolver or FakeDns({PBX_NAME: ["192.0.2.10"]}),
    )


# Every way of writing "a service on this host" that a URL or a Location header can carry, with
# what the refusal must say. "{port}" is the secret service's port.
FORBIDDEN = {
    "loopback": ("http://127.0.0.1:{port}/v1/admin/subscribers", "loopback"),
    "loopback elsewhere in 127/8": ("http://127.0.0.2:{port}/", "loopback"),
    "ipv6 loopback": ("http://[::1]:{port}/", "loopback"),
    "ipv4-mapped loopback": ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),
    "ipv4-compatible loopback": ("http://[::127.0.0.1]:{port}/", "loopback"),
    "unspecified": ("http://0.0.0.0:{port}/", "unspecified"),
    "ipv6 unspecified": ("http://[::]:{port}/", "unspecified"),
    "short ipv4": ("http://127.1:{port}/", "not a valid host"),
    "decimal ipv4": ("http://2130706433:{port}/", "not a valid host"),
    "hex ipv4": ("http://0x7f000001:{port}/", "not a valid host"),
    "octal ipv4": ("http://0177.0.0.1:{port}/", "not a valid host"),
    "cloud metadata": ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    "mapped cloud metadata": ("http://[::ffff:169.254.169.254]/latest/", "cloud metadata"),
    "aws ipv6 metadata": ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
    "link-local": ("http://169.254.10.1:{port}/", "link-local"),
    "ipv6 link-local": ("http://[fe80::1]:{port}/", "link-local"),
    "multicast": ("http://224.0.0.1:{port}/", "multicast"),
    "broadcast": ("http://255.255.255.255:{port}/", "broadcast"),
    "userinfo": (f"http://{PBX_NAME}@127.0.0.1:{{port}}/", "user name"),
    "userinfo and port": (f"http://{PBX_NAME}:80@127.0.0.1:{{port}}/", "user name"),
    "localhost": ("http://localhost:{port}/", "not allowed"),
    "allowed name resolving to loopback": (f"http://{PBX_NAME}:{{port}}/", "loopback"),
    "file": ("file:///etc/passwd", "scheme"),
    "ftp": ("ftp://127.0.0.1:{port}/", "scheme"),
    "gopher": ("gopher://127.0.0.1:{port}/_GET%20/", "scheme"),
}
# The sender trusted today: notifyd's own client address behind a reverse proxy on this host,
# and the networks of a source whose allow_from takes in loopback.
LOOPBACK_SENDERS = ("127.0.0.1", "::1", "127.0.0.0/8", "::ffff:127.0.0.1", "0.0.0.0/0", "::/0")
# pbx.internal.example is the allowed name; the hostile DNS maps it (and the rest) to loopback.
HOSTILE_DNS = {PBX_NAME: ["127.0.0.1", "::1"], "localhost": ["127.0.0.1", "::1"]}


@pytest.mark.parametrize(("url", "reason"), FORBIDDEN.values(), ids=FORBIDDEN.keys())
async def test_a_url_to_this_host_is_refused_without_a_request(
    secret: Server, url: str, reason: str
) -> None:
    target = url.format(port=secret.port)
    with pytest.raises(FetchError, match=reason) as failed:
        await get(target, sender_hosts=LOOPBACK_SENDERS, resolver=FakeDns(HOSTILE_DNS))
    assert failed.value.transient is False
    assert secret.requests == []


@pytest.mark.parametrize(("url", "reason"), FORBIDDEN.values(), ids=FORBIDDEN.keys())
async def test_a_redirect_to_this_host_is_refused_without_a_request(
    pbx: Server, secret: Server, url: str, reason: str
) -> None:
    # The PBX itself is on loopback here, so the operator lists it: address and port.
    target = url.format(port=secret.port)
    dns = FakeDns(HOSTILE_DNS)
    start = pbx.redirect(target)
    allow = (PBX_NAME, f"127.0.0.1:{pbx.port}")
    # 127.0.0.1 is listed, on the PBX's port only.
    listed_elsewhere = f"127.0.0.1 is not allowed on port {secret.port}$"
    with pytest.raises(FetchError, match=f"{reason}|{listed_elsewhere}") as failed:
        await get(start, allow_hosts=allow, sender_hosts=LOOPBACK_SENDERS, resolver=dns)
    assert failed.value.transient is False
    assert pbx.requests == ["/redirect"]
    assert secret.requests == []


@pytest.mark.parametrize(
    "host",
    ["\u2460\u2461\u2466.0.0.1", "127\u30020\u30020\u30021", "\uff11\uff12\uff17.0.0.1"],
    ids=["circled digits", "ideographic full stops", "fullwidth digits"],
)
async def test_a_unicode_spelling_of_loopback_is_refused(secret: Server, host: str) -> None:
    # IDNA folds these to 127.0.0.1: checked as the address they become, not as a name.
    with pytest.raises(FetchError, match="loopback"):
        await get(secret.url("/", host=host), sender_hosts=LOOPBACK_SENDERS)
    assert secret.requests == []


async def test_the_sender_of_the_webhook_does_not_open_its_loopback_ports(
    secret: Server,
) -> None:
    # The case: only pbx.internal.example is allowed, and the webhook came through a
    # reverse proxy on this host, so its sender address is 127.0.0.1.
    with pytest.raises(FetchError, match="loopback"):
        await get(secret.url("/v1/admin/subscribers"), sender_hosts=("127.0.0.1",))
    assert secret.requests == []


async def test_an_explicitly_listed_loopback_address_and_port_is_fetched(pbx: Server) -> None:
    url = pbx.url("/recordings/msg0001.wav")
    assert await get(url, allow_hosts=(f"127.0.0.1:{pbx.port}",)) == sample_wav()
    assert pbx.requests == ["/recordings/msg0001.wav"]


async def test_an_explicitly_listed_loopback_address_opens_only_its_port(
    pbx: Server, secret: Server
) -> None:
    with pytest.raises(FetchError, match="not allowed") as failed:
        await get(secret.url("/"), allow_hosts=(f"127.0.0.1:{pbx.port}",))
    assert failed.value.transient is False
    assert secret.requests == []


async def test_a_listed_name_resolving_to_a_listed_address_is_fetched(pbx: Server) -> None:
    # An operator whose PBX name resolves to loopback says so by listing the address too.
    dns = FakeDns({PBX_NAME: ["127.0.0.1"]})
    url = pbx.url("/recordings/msg0001.wav", host=PBX_NAME)
    assert await get(url, allow_hosts=(PBX_NAME, "127.0.0.1"), resolver=dns) == sample_wav()


async def test_a_name_entry_with_a_port_allows_only_that_port(pbx: Server) -> None:
    dns = FakeDns({PBX_NAME: ["127.0.0.1"]})
    url = pbx.url("/recordings/msg0001.wav", host=PBX_NAME)
    listed = (f"{PBX_NAME}:{pbx.port}", "127.0.0.1")
    assert await get(url, allow_hosts=listed, resolver=dns) == sample_wav()
    elsewhere = (f"{PBX_NAME}:{pbx.port + 1}", "127.0.0.1")
    with pytest.raises(FetchError, match="not allowed"):
        await get(url, allow_hosts=elsewhere, resolver=dns)
    assert pbx.requests == ["/recordings/msg0001.wav"]


async def test_the_checked_address_is_the_one_connected_to(pbx: Server) -> None:
    # DNS rebinding: asked again between the check and the connection, the name would point at
    # another loopback address (where nothing listens on this port). One question, one answer.
    dns = RebindingDns(first="127.0.0.1", later="127.0.0.2")
    url = pbx.url("/recordings/msg0001.wav", host=PBX_NAME)
    assert await get(url, allow_hosts=(PBX_NAME, "127.0.0.1"), resolver=dns) == sample_wav()
    assert dns.questions == [PBX_NAME]


async def test_a_name_with_some_forbidden_addresses_connects_only_to_the_others(
    pbx: Server,
) -> None:
    dns = FakeDns({PBX_NAME: ["169.254.169.254", "127.0.0.1"]})
    url = pbx.url("/recordings/msg0001.wav", host=PBX_NAME)
    assert await get(url, allow_hosts=(PBX_NAME, "127.0.0.1"), resolver=dns) == sample_wav()


async def test_a_redirect_between_allowed_hosts_is_followed(pbx: Server, other_pbx: Server) -> None:
    final = other_pbx.url("/recordings/msg0001.wav")
    start = pbx.redirect(final)
    allow = (f"127.0.0.1:{pbx.port}", f"127.0.0.1:{other_pbx.port}")
    assert await get(start, allow_hosts=allow) == sample_wav()
    assert (pbx.requests, other_pbx.requests) == (["/redirect"], ["/recordings/msg0001.wav"])


async def test_a_redirect_chain_longer_than_three_is_refused(
    pbx: Server, other_pbx: Server
) -> None:
    # Two allowed servers sending each other back and forth.
    chain = other_pbx.url("/recordings/msg0001.wav")
    for hop in range(4):
        chain = (pbx if hop % 2 else other_pbx).redirect(chain)
    allow = (f"127.0.0.1:{pbx.port}", f"127.0.0.1:{other_pbx.port}")
    with pytest.raises(FetchError, match="more than 3 redirects") as failed:
        await get(chain, allow_hosts=allow)
    assert failed.value.transient is False
    assert len(pbx.requests) + len(other_pbx.requests) == 4
    assert "/recordings/msg0001.wav" not in other_pbx.requests


async def test_a_name_that_does_not_resolve_is_transient() -> None:
    async with asyncio.timeout(WAIT):
        with pytest.raises(FetchError, match="could not resolve") as failed:
            await get(f"http://{PBX_NAME}/x", resolver=FakeDns({}))
    assert failed.value.transient is True
