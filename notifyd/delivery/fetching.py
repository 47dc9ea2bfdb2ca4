"""Attachments the PBX offers by URL, fetched when their email is built: from allowlisted
hosts, ports and addresses only (`catalogue.fetch_allowlist`), every redirect checked,
size- and time-limited, with every failure marked transient (retry later) or not."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from notifyd.catalogue.attachments import size_text
from notifyd.catalogue.fetch_allowlist import Allowlist

_FETCH_CHUNK = 64 * 1024


_MAX_REDIRECTS = 3


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A file could not be fetched from the PBX; `transient` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class _Refused(Exception):
    """A URL or address the allowlist refuses; the message says why."""


def _target(url: str, allowlist: Allowlist) -> URL:
    """`url` parsed as aiohttp (yarl) will send it, if its scheme, host and port are allowed.

    The host checked is the parsed one, so `http://pbx.example@evil.example/` is
    evil.example. A URL carrying a user name or password is refused outright: its host is
    easy to misread, and the credentials would be stored with the event. A name's
    addresses are checked once it is resolved (`_addresses`).
    """
    # A backslash is a path separator to some URL parsers and not to others.
    if "\\" in url or not url.isprintable():
        raise _Refused("the URL is not valid")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number
        target = URL(url)
    except ValueError:
        raise _Refused("the URL is not valid") from None
    if target.scheme not in ("http", "https") or parts.scheme not in ("http", "https"):
        raise _Refused(f"the URL's scheme {target.scheme!r} is not allowed (http or https)")
    if "@" in parts.netloc or target.user is not None or target.password is not None:
        raise _Refused("a URL with a user name or password is not allowed")
    # The host and port checked are yarl's, the ones aiohttp connects to.
    host, port = target.raw_host, target.port
    if not host or port is None:
        raise _Refused("the URL is not valid")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        refusal = allowlist.name_refusal(host, port)
    else:
        refusal = allowlist.address_refusal(address, port, named=False)
    if refusal is not None:
        raise _Refused(refusal)
    return target


def host_allowed(url: str, allow_hosts: Sequence[str], sender_hosts: Sequence[str] = ()) -> bool:
    """Whether `url` is http(s) on a host (and port) of the allowlist, before any DNS.

    `allow_hosts` are `[attachments] fetch_allow_hosts` (names, IPs, CIDRs, each with an
    optional port); `sender_hosts` the webhook's sender and its source's networks. An empty
    allowlist allows nothing. See `notifyd.catalogue.fetch_allowlist` for the addresses
    never allowed.
    """
    try:
        _target(url, Allowlist.of(allow_hosts, sender_hosts))
    except _Refused:
        return False
    return True


async def _addresses(
    target: URL, allowlist: Allowlist, resolver: AbstractResolver
) -> list[ResolveResult]:
    """Where to connect for `target`: its address, or the allowed addresses its name has."""
    host, port = target.raw_host, target.port
    assert host is not None  # _target() made sure of both
    assert port is not None
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return [_result(host, host, port)]  # checked by _target(); aiohttp asks no resolver
    try:
        answers = await resolver.resolve(host, port, family=socket.AF_UNSPEC)
    except OSError as error:
        raise FetchError(
            f"could not resolve the URL's host: {type(error).__name__}", transient=True
        ) from None
    allowed: list[ResolveResult] = []
    refusals: list[str] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer["host"])
        except ValueError:
            continue
        refusal = allowlist.address_refusal(address, port, named=True)
        if refusal is None:
            allowed.append(_result(host, answer["host"], port))
        else:
            refusals.append(refusal)
    if not allowed:
        reason = refusals[0] if refusals else "it has no address"
        # Not transient: an address that is not allowed does not become allowed by waiting.
        raise FetchError(
            f"the URL's host {host} resolves to no allowed address: {reason}", transient=False
        )
    return allowed


def _result(name: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "hostname": name,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": 0,
    }


class _CheckedAddresses(AbstractResolver):
    """The connector's resolver: answers only with the addresses `_addresses` checked for the
    request in flight, so nothing can change between the check and the connection (a DNS
    answer that changes between two questions, "DNS rebinding", is never asked for)."""

    def __init__(self) -> None:
        self.host = ""
        self.answers: list[ResolveResult] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".") != self.host.rstrip(".") or not self.answers:
            raise OSError(f"{host} was not checked")
        return [_result(host, answer["host"], port) for answer in self.answers]

    async def close(self) -> None:
        pass


async def fetch(
    url: str,
    *,
    allow_hosts: Sequence[str],
    sender_hosts: Sequence[str] = (),
    max_bytes: int,
    timeout_seconds: float,
    resolver: AbstractResolver | None = None,
) -> bytes:
    """Fetch a file the PBX offers by URL; raise FetchError, transient or not.

    Nothing is sent to a host, port or address the allowlist refuses (`host_allowed`, and
    `notifyd.catalogue.fetch_allowlist` for addresses), including one a redirect points to
    (at most 3 are followed, each checked). A name is resolved once per request, by `resolver` (the
    system's by default), and the connection goes to an address that was checked. At most
    `max_bytes` are read; `timeout_seconds` bounds the whole fetch, DNS, redirects and body
    included. The bytes are not checked here: `prepare()` sniffs them, so a server that
    labels a WAV as text/html still delivers it.
    """
    allowlist = Allowlist.of(allow_hosts, sender_hosts)
    checked = _CheckedAddresses()
    names: AbstractResolver = DefaultResolver() if resolver is None else resolver
    try:
        async with (
            asyncio.timeout(timeout_seconds),
            # A session per fetch: its connector knows no address but the checked ones, and
            # keeps no connection or cookie for the next fetch, whose allowlist may differ.
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=checked, use_dns_cache=False),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
            ) as session,
        ):
            target = _target(url, allowlist)
            for _ in range(_MAX_REDIRECTS + 1):
                checked.host = target.raw_host or ""
                checked.answers = await _addresses(target, allowlist, names)
                async with session.get(target, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        target = _redirected(response, target, allowlist)
                        continue
                    if response.status != 200:
                        raise _status_error(response.status)
                    return await _read_body(response, max_bytes)
            raise FetchError(f"more than {_MAX_REDIRECTS} redirects", transient=False)
    except _Refused as refused:
        raise FetchError(str(refused), transient=False) from None
    except TimeoutError:
        raise FetchError(
            f"no complete answer within {timeout_seconds:g} seconds", transient=True
        ) from None
    except aiohttp.InvalidURL:
        raise FetchError("the URL is not valid", transient=False) from None
    except aiohttp.ClientError as error:
        # Connection refused or reset, a body cut short: the PBX may be back soon.
        raise FetchError(f"could not fetch: {type(error).__name__}", transient=True) from None
    finally:
        if resolver is None:
            await names.close()


def _redirected(response: aiohttp.ClientResponse, target: URL, allowlist: Allowlist) -> URL:
    """Where a redirect points, checked like the URL it came from."""
    location = response.headers.get("Location")
    if not location:
        raise FetchError(f"the PBX answered {response.status} without a Location", transient=False)
    try:
        return _target(urljoin(str(target), location), allowlist)
    except _Refused as refused:
        raise _Refused(f"redirected: {refused}") from None


def _status_error(status: int) -> FetchError:
    # 408 and 429 ask to come back later; 5xx is the PBX's own trouble.
    transient = status >= 500 or status in (408, 429)
    return FetchError(f"the PBX answered {status}", transient=transient)


async def _read_body(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    too_large = FetchError(f"the file is larger than {size_text(max_bytes)}", transient=False)
    if response.content_length is not None and response.content_length > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(_FETCH_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            # Leaving the response unread closes the connection: nothing more is read.
            raise too_large
    return bytes(body)
