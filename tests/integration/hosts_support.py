"""What the several-hosts tests share: a reverse proxy that spreads requests round-robin over
notifyd hosts (as nginx's `upstream` block does, passing to the next host only when one
refuses the connection), and an SMTP sink whose relay can be held at MAIL, so that every
host is caught holding claims when one of them is killed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import WAIT, SmtpSink

# Headers a proxy does not pass on (RFC 9110 §7.6.1), and those aiohttp sets itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
)


@dataclass
class RoundRobin:
    """Each request to the next upstream in turn. A refused connection (a dead host) passes
    the request to the next one, as nginx's default `proxy_next_upstream error` does; a
    host that dies after the request was sent gives 502, and the sender retries (nginx does
    not pass a POST on either: it may have been acted on)."""

    upstreams: list[str] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    turn: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        timeout = aiohttp.ClientTimeout(total=WAIT)
        for _ in range(len(self.upstreams)):
            upstream = self.upstreams[self.turn % len(self.upstreams)]
            self.turn += 1
            try:
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.request(
                        request.method,
                        upstream + request.path_qs,
                        data=body,
                        headers=headers,
                        allow_redirects=False,
                    ) as answer,
                ):
                    content = await answer.read()
                    self.served[upstream] += 1
                    passed = {
                        k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP
                    }
                    return web.Response(status=answer.status, body=content, headers=passed)
            except aiohttp.ClientConnectorError:
                continue  # refused: nothing was sent, the next host takes it
            except (aiohttp.ClientError, TimeoutError):
                return web.Response(status=502, text="bad gateway")
        return web.Response(status=502, text="no upstream")


@asynccontextmanager
async def round_robin_proxy() -> AsyncIterator[tuple[str, RoundRobin]]:
    """The proxy on loopback (a port the OS picks): its base URL and its upstream list, to
    be filled once the hosts are up."""
    proxy = RoundRobin()
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", proxy
    finally:
        await runner.cleanup()


@dataclass
class GatedSink(SmtpSink):
    """The conftest sink, whose MAIL waits while `gate` is closed: a relay that is slow to
    answer, so the hosts' claims stay in flight. A message whose connection died before the
    gate opened never reached DATA, so it cannot be counted twice."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self.waiting += 1
        try:
            await asyncio.wait_for(self.gate.wait(), timeout=WAIT * 4)
        finally:
            self.waiting -= 1
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    def by_message_id(self) -> Counter[str]:
        return Counter(str(message["Message-ID"]) for message in self.messages)
