"""Where attachment URLs may be fetched from: which hosts and ports, and which addresses.

Pure (the standard library's `ipaddress` only): settings check `[attachments]
fetch_allow_hosts` with `parse_entry`, and `delivery.fetching.fetch` asks an `Allowlist` about
every URL it is given or redirected to and about every address it is about to connect to.

Two kinds of entry:
- the operator's (`fetch_allow_hosts`): a host name, an IP address or a CIDR network, each
  with an optional port ("pbx.internal.example:8088", "[2001:db8::7]:8088");
- the sender's: the address that posted the webhook and its source's `allow_from` networks
  (the PBX offers files from where it posts), any port.

Whatever the entries, an address that reaches this host or a cloud's metadata service
(loopback, unspecified, link-local, multicast, broadcast, metadata; also written as an
IPv4-mapped or -compatible IPv6 address) is refused unless the operator lists it, or a
network inside its range, as an IP/CIDR entry. A name never opens such an address, nor
does a wide network ("0.0.0.0/0"), nor the sender: behind a reverse proxy on the same host
the sender is 127.0.0.1, and trusting it opened every loopback service, notifyd's own
admin API included.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The addresses no URL may reach unless the operator lists them, most specific first: the
# first range an address falls in names it and decides which entries may open it.
_SPECIAL: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("169.254.169.254/32", "cloud metadata"),  # AWS, GCP, Azure, OpenStack, Oracle
        ("fd00:ec2::254/128", "cloud metadata"),  # AWS over IPv6
        ("100.100.100.200/32", "cloud metadata"),  # Alibaba Cloud
        ("168.63.129.16/32", "cloud metadata"),  # Azure's host agent (WireServer)
        ("127.0.0.0/8", "loopback"),
        ("::1/128", "loopback"),
        # Connecting to 0.0.0.0 or :: reaches this host's own listeners.
        ("0.0.0.0/8", "unspecified"),
        ("::/128", "unspecified"),
        ("169.254.0.0/16", "link-local"),
        ("fe80::/10", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
# The IPv6 forms that carry an IPv4 address (an operator's ::ffff:10.0.0.5 is 10.0.0.5).
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# WHATWG URL: a host whose last label is a number is an IPv4 address, however it is
# written (127.1, 2130706433, 0x7f000001, 0177.0.0.1): getaddrinfo() reads these too.
_NUMBER = re.compile(r"^(\d+|0x[0-9a-f]*)$")


def canonical(address: Address) -> Address:
    """An IPv4 address written as IPv6 (::ffff:a.b.c.d, ::a.b.c.d) as the IPv4 it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        # :: and ::1 are IPv6's own unspecified and loopback addresses, not IPv4 ones.
        if address in _COMPATIBLE and int(address) > 1:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _canonical_network(network: Network) -> Network:
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        for carrier in (_MAPPED, _COMPATIBLE):
            if network.subnet_of(carrier) and int(network.network_address) > 1:
                base = ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)
                return ipaddress.IPv4Network((base, network.prefixlen - 96))
    return network


def special(address: Address) -> tuple[Network, str] | None:
    """The range (and its kind, e.g. "loopback") that makes `address` unfit for a URL, if any."""
    address = canonical(address)
    for network, kind in _SPECIAL:
        if address in network:
            return network, kind
    return None


def is_numeric_host(host: str) -> bool:
    """Whether a host that is not a canonical IP address would still be read as one."""
    last = host.lower().rstrip(".").rsplit(".", 1)[-1]
    return bool(_NUMBER.match(last))


def host_name(text: str) -> str | None:
    """`text` as a comparable host name (lowercase ASCII, no trailing dot), or None if it
    cannot be one (empty, bad characters, or numeric: see `is_numeric_host`)."""
    name = text.strip().lower().rstrip(".")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if not name or len(name) > 253 or is_numeric_host(name):
        return None
    if not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


@dataclass(frozen=True)
class Entry:
    """One allowlist entry: a host name or a network, and a port or any (None)."""

    name: str | None
    network: Network | None
    port: int | None
    # The operator's own entry: only these may open a special address.
    explicit: bool

    def allows_port(self, port: int) -> bool:
        return self.port is None or self.port == port

    def opens(self, address: Address, port: int) -> bool:
        """Whether this entry lists `address` (and `port`)."""
        return self.network is not None and address in self.network and self.allows_port(port)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"has a port that is not a number from 1 to 65535: {text!r}")
    return int(text)


def parse_entry(text: str, *, explicit: bool = True) -> Entry:
    """An entry from its text: "name", "name:port", "ip", "ip:port", "[ipv6]:port", "cidr".

    Raises ValueError with a reason that completes "fetch_allow_hosts[0] ...".
    """
    entry = text.strip().lower()
    if "://" in entry:
        raise ValueError(f"is a URL, not a host: {text!r}")
    host, port = entry, None
    if entry.startswith("["):
        host, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"is not a host, [IPv6 address] or [IPv6 address]:port: {text!r}")
        port = _port(rest[1:]) if rest else None
    elif entry.count(":") == 1:  # more is a bare IPv6 address
        host, _, number = entry.partition(":")
        port = _port(number)
    try:
        network = _canonical_network(ipaddress.ip_network(host, strict=False))
    except ValueError:
        pass
    else:
        return Entry(name=None, network=network, port=port, explicit=explicit)
    name = host_name(host)
    if name is None or entry.startswith("["):
        raise ValueError(f"is not a host name, IP address or CIDR network: {text!r}")
    return Entry(name=name, network=None, port=port, explicit=explicit)


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[Entry, ...]

    @classmethod
    def of(cls, operator: Iterable[str], sender: Iterable[str] = ()) -> Allowlist:
        """The operator's entries and the sender's. Settings refuse a bad operator entry at
        start; one that still fails to parse here, or a sender's, allows nothing."""
        entries: list[Entry] = []
        for texts, explicit in ((operator, True), (sender, False)):
            for text in texts:
                try:
                    entry = parse_entry(text, explicit=explicit)
                except ValueError:
                    continue
                # The sender is an address or a network, never a name to trust.
                if explicit or entry.network is not None:
                    entries.append(entry if explicit else Entry(None, entry.network, None, False))
        return cls(tuple(entries))

    def name_refusal(self, name: str, port: int) -> str | None:
        """Why a URL naming host `name` (not an address) on `port` may not be fetched, or None."""
        canonical_name = host_name(name)
        if canonical_name is None:
            return f"the URL's host {name!r} is not a valid host"
        matching = [e for e in self.entries if e.name == canonical_name]
        if not matching:
            return f"the URL's host {canonical_name} is not allowed"
        if not any(e.allows_port(port) for e in matching):
            return f"the URL's host {canonical_name} is not allowed on port {port}"
        return None

    def address_refusal(self, address: Address, port: int, *, named: bool) -> str | None:
        """Why connecting to `address` on `port` is not allowed, or None.

        `named`: the address is what an allowed name resolved to, so the name vouches for an
        ordinary address; otherwise the URL gave the address and an entry must list it.
        """
        address = canonical(address)
        found = special(address)
        if found is not None:
            network, kind = found
            listing = [
                e
                for e in self.entries
                if e.explicit
                and e.network is not None
                and e.network.version == network.version
                and e.network.subnet_of(network)  # type: ignore[arg-type]
                and address in e.network
            ]
            if any(e.allows_port(port) for e in listing):
                return None
            if listing:
                return f"the URL's host {address} is not allowed on port {port}"
            return (
                f"the URL's host {address} is a {kind} address, not allowed unless "
                "[attachments] fetch_allow_hosts lists it as an IP or CIDR entry"
            )
        if named or any(e.opens(address, port) for e in self.entries):
            return None
        if any(e.network is not None and address in e.network for e in self.entries):
            return f"the URL's host {address} is not allowed on port {port}"
        return f"the URL's host {address} is not allowed"
