"""The daemon's listeners: the public one ([http]) and the admin one ([http.admin]), each
bound before anything else starts (a port in use is said at once) and then serving its
app (app.py) over plain HTTP or TLS. daemon.py binds and serves them; settings/listeners.py
says what each is for."""

from __future__ import annotations

import errno
import socket
import ssl
from contextlib import AsyncExitStack
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Listener:
    """One listener's bound sockets (one per address of its host, all on one port)."""

    section: str  # "http" or "http.admin": what an operator changes to move it
    host: str
    sockets: list[socket.socket]
    ssl_context: ssl.SSLContext | None

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def serve(
        self, stack: AsyncExitStack, app: web.Application, shutdown_timeout: float
    ) -> None:
        """Serve `app` on the sockets until `stack` closes: then stop accepting and let the
        requests in flight finish within `shutdown_timeout`."""
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        for sock in self.sockets:
            await web.SockSite(runner, sock, ssl_context=self.ssl_context).start()


def bind(section: str, host: str, port: int, context: ssl.SSLContext | None) -> Listener:
    """The listener's sockets, bound (not yet listening), with its TLS (or None)."""
    return Listener(section, host, _bind(section, host, port), context)


def _bind(section: str, host: str, port: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, protocol, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, protocol)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                # One port for every address of the host, as the first one got.
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.setblocking(False)
    except OSError as error:
        for sock in sockets:
            sock.close()
        if error.errno == errno.EADDRINUSE:
            raise OSError(
                error.errno,
                f"{section} {host}:{port} is in use (another notifyd, or another program, "
                f"listens there); set [{section}] port",
            ) from None
        raise OSError(error.errno, f"cannot listen on {section} {host}:{port}: {error}") from None
    return sockets
