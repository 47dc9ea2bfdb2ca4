"""The client's address behind a reverse proxy, believed only from the proxies the operator
lists ([http] trusted_proxies, settings/listeners.py).

A middleware of both listeners' apps (app.py) replaces `request.remote` with that address,
so that everything downstream reading it (a source's allow_from in webhooks.py and
service_reports.py, the fresh-link rate limit in pages/renewal.py, their log lines) sees
the client, not the proxy. A request whose peer is not a listed proxy keeps its peer's
address: its X-Forwarded-For or Forwarded header is the client's own words, and believing
them would let anyone past an allow_from or around a rate limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiohttp import web

from notifyd.http.runtime import RUNTIME
from notifyd.settings import IPNetwork

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    """An address as a proxy writes a hop: 192.0.2.1, 192.0.2.1:4711, [2001:db8::1]:4711,
    2001:db8::1, or quoted (Forwarded); None for anything else ("unknown", a secret token)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _unmapped(address: Address) -> Address:
    """An IPv4 peer of a dual-stack socket (::ffff:192.0.2.1) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[IPNetwork]) -> bool:
    unmapped = _unmapped(address)
    return any(unmapped in network for network in proxies)


def hops(request: web.BaseRequest, header: str) -> list[str]:
    """The hops the proxies wrote, nearest the client first, every copy of the header."""
    if header == "forwarded":
        return [element.get("for", "") for element in request.forwarded]
    return [
        hop for value in request.headers.getall("X-Forwarded-For", ()) for hop in value.split(",")
    ]


def client_address(peer: str, written: Iterable[str], proxies: Sequence[IPNetwork]) -> str:
    """The peer's address unless the peer is a trusted proxy; then, walking the hops from
    the right, the first one that is not itself a trusted proxy. A hop that is no address
    stops the walk at the last trusted one: what a proxy could not name is no client."""
    found = _address(peer)
    if found is None or not _trusted(found, proxies):
        return peer
    client = found
    for hop in reversed(list(written)):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, proxies):
            break
    return str(_unmapped(client))


@web.middleware
async def real_client(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.config_dict[RUNTIME].settings.http
    peer = request.remote
    if not settings.trusted_proxies or peer is None:
        return await handler(request)
    client = client_address(peer, hops(request, settings.proxy_header), settings.trusted_proxies)
    if client == peer:
        return await handler(request)
    return await handler(request.clone(remote=client))
