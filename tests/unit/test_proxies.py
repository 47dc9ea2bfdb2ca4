"""The client's address as http/proxies.py reads it: the peer's, unless the peer is a listed
proxy; then the rightmost hop the proxies wrote that is not itself a listed proxy."""

from __future__ import annotations

import ipaddress

import pytest

from notifyd.http.proxies import client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:1::/48"))


@pytest.mark.parametrize(
    ("peer", "hops", "client"),
    [
        # Not a proxy: whatever it wrote is its own word.
        ("198.51.100.7", ["192.0.2.1"], "198.51.100.7"),
        ("127.0.0.1", ["10.1.1.1"], "127.0.0.1"),
        # A proxy: the hop it appended; a client's forged hop to the left is passed over.
        ("10.0.0.5", ["192.0.2.1"], "192.0.2.1"),
        ("10.0.0.5", ["203.0.113.66", "192.0.2.1"], "192.0.2.1"),
        # Two proxies in a row: the first hop neither of them is.
        ("10.0.0.5", ["192.0.2.1", "10.2.2.2"], "192.0.2.1"),
        # Every hop a proxy: the leftmost.
        ("10.0.0.5", ["10.9.9.9", "10.2.2.2"], "10.9.9.9"),
        # No header: the proxy itself.
        ("10.0.0.5", [], "10.0.0.5"),
        # Ports, brackets, quotes and spaces as proxies write them.
        ("10.0.0.5", [" 192.0.2.1:4711"], "192.0.2.1"),
        ("10.0.0.5", ['"[2001:db8::7]:4711"'], "2001:db8::7"),
        ("10.0.0.5", ["2001:db8::7"], "2001:db8::7"),
        ("2001:db8:1::2", ["192.0.2.1"], "192.0.2.1"),
        ("::ffff:10.0.0.5", ["::ffff:192.0.2.1"], "192.0.2.1"),
        # What is no address stops the walk at the last proxy: no client is made up.
        ("10.0.0.5", ["192.0.2.1", "unknown"], "10.0.0.5"),
        ("10.0.0.5", ["192.0.2.1", "_hidden", "10.2.2.2"], "10.2.2.2"),
    ],
)
def test_the_client_is_the_rightmost_hop_no_listed_proxy_wrote(
    peer: str, hops: list[str], client: str
) -> None:
    assert client_address(peer, hops, PROXIES) == client


def test_no_proxies_listed_means_the_peer() -> None:
    assert client_address("10.0.0.5", ["192.0.2.1"], ()) == "10.0.0.5"
