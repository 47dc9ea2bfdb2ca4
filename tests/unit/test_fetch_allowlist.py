"""Which hosts, ports and addresses an attachment URL may be fetched from."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifyd.catalogue.fetch_allowlist import Allowlist, canonical, parse_entry, special

OPERATOR = ("pbx.internal.example", "files.pbx.example:8088", "10.20.0.0/16", "192.0.2.7:8443")
SENDER = ("198.51.100.4", "203.0.113.0/24")


def refusal(
    address: str, port: int = 80, *, named: bool = False, **lists: tuple[str, ...]
) -> str | None:
    allowlist = Allowlist.of(lists.get("operator", OPERATOR), lists.get("sender", SENDER))
    return allowlist.address_refusal(ipaddress.ip_address(address), port, named=named)


@pytest.mark.parametrize(
    ("entry", "name", "network", "port"),
    [
        ("pbx.internal.example", "pbx.internal.example", None, None),
        (" PBX.Internal.Example. ", "pbx.internal.example", None, None),
        ("pbx.internal.example:8088", "pbx.internal.example", None, 8088),
        ("bücher.example", "xn--bcher-kva.example", None, None),
        ("127.0.0.1", None, "127.0.0.1/32", None),
        ("127.0.0.1:8088", None, "127.0.0.1/32", 8088),
        ("10.20.0.0/16", None, "10.20.0.0/16", None),
        ("::1", None, "::1/128", None),
        ("[::1]:8088", None, "::1/128", 8088),
        ("[fd00::/8]", None, "fd00::/8", None),
        # An IPv4 address written as IPv6 is that IPv4 address.
        ("::ffff:127.0.0.1", None, "127.0.0.1/32", None),
        ("[::ffff:10.0.0.0/104]:80", None, "10.0.0.0/8", 80),
    ],
)
def test_entries_are_names_or_networks_with_an_optional_port(
    entry: str, name: str | None, network: str | None, port: int | None
) -> None:
    parsed = parse_entry(entry)
    assert (parsed.name, parsed.port) == (name, port)
    assert parsed.network == (ipaddress.ip_network(network) if network else None)


@pytest.mark.parametrize(
    "entry",
    [
        *("", "pbx.example:0", "pbx.example:65536", "pbx.example:", "[::1", "[::1]8088"),
        *("a..b", "-a.b", "pbx example", "http://pbx.example"),
        # getaddrinfo() reads these as 127.0.0.1: an address written so is not a name.
        *("127.1", "2130706433", "0x7f000001", "0177.0.0.1"),
    ],
)
def test_entries_that_are_no_host_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"^(is|has) "):
        parse_entry(entry)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("169.254.169.254", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_addresses_of_this_host_and_of_metadata_services_are_special(
    address: str, kind: str
) -> None:
    found = special(ipaddress.ip_address(address))
    assert found is not None
    assert found[1] == kind


@pytest.mark.parametrize("address", ["10.20.1.2", "192.0.2.7", "8.8.8.8", "2001:db8::1", "fd00::1"])
def test_ordinary_addresses_are_not_special(address: str) -> None:
    assert special(ipaddress.ip_address(address)) is None


@given(st.integers(0, 2**32 - 1))
def test_an_ipv4_address_written_as_ipv6_is_judged_as_itself(value: int) -> None:
    ipv4 = ipaddress.IPv4Address(value)
    mapped = ipaddress.IPv6Address(f"::ffff:{ipv4}")
    assert canonical(mapped) == ipv4
    assert special(mapped) == special(ipv4)
    if value > 1:  # :: and ::1 are IPv6's own
        assert special(ipaddress.IPv6Address(value)) == special(ipv4)
    wide = Allowlist.of(["0.0.0.0/0", "::/0"], ["0.0.0.0/0", "::/0"])
    assert (wide.address_refusal(mapped, 80, named=False) is None) == (special(ipv4) is None)


def test_an_address_is_allowed_when_an_entry_lists_it_and_its_port() -> None:
    assert refusal("10.20.3.4", 5060) is None
    assert refusal("192.0.2.7", 8443) is None
    assert refusal("192.0.2.7", 80) == "the URL's host 192.0.2.7 is not allowed on port 80"
    assert refusal("10.21.0.1") == "the URL's host 10.21.0.1 is not allowed"


def test_the_sender_vouches_for_its_ordinary_addresses_on_any_port() -> None:
    assert refusal("198.51.100.4", 8088) is None
    assert refusal("203.0.113.200", 22) is None
    assert refusal("198.51.100.5") == "the URL's host 198.51.100.5 is not allowed"


@pytest.mark.parametrize("sender", ["127.0.0.1", "::1", "127.0.0.0/8", "0.0.0.0/0", "::/0"])
def test_the_sender_never_opens_loopback(sender: str) -> None:
    reason = refusal("127.0.0.1", 8080, sender=(sender,))
    assert reason is not None
    assert "is a loopback address" in reason
    assert refusal("::1", 8080, sender=(sender,)) is not None


def test_a_name_vouches_for_ordinary_addresses_never_for_special_ones() -> None:
    assert refusal("10.99.0.1", 8088, named=True) is None
    reason = refusal("127.0.0.1", 80, named=True)
    assert reason == (
        "the URL's host 127.0.0.1 is a loopback address, not allowed unless [attachments] "
        "fetch_allow_hosts lists it as an IP or CIDR entry"
    )


@pytest.mark.parametrize(
    ("entry", "address", "port", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1", 8088, True),
        ("127.0.0.1:8088", "127.0.0.1", 8088, True),
        ("127.0.0.1:8088", "127.0.0.1", 8080, False),
        ("127.0.0.1:8088", "::ffff:127.0.0.1", 8088, True),
        ("127.0.0.0/8", "127.0.0.5", 80, True),
        ("::1", "::1", 80, True),
        ("::1", "127.0.0.1", 80, False),
        # A network wider than the special range does not list it.
        ("0.0.0.0/0", "127.0.0.1", 80, False),
        ("::/0", "::1", 80, False),
        ("::/0", "::ffff:127.0.0.1", 80, False),
        ("0.0.0.0/1", "0.0.0.0", 80, False),
        # Link-local listed does not list the metadata address inside it: that one by itself.
        ("169.254.0.0/16", "169.254.1.1", 80, True),
        ("169.254.0.0/16", "169.254.169.254", 80, False),
        ("169.254.169.254", "169.254.169.254", 80, True),
        ("fe80::/10", "fe80::1", 80, True),
    ],
)
def test_only_an_operators_ip_entry_inside_a_special_range_opens_it(
    entry: str, address: str, port: int, allowed: bool
) -> None:
    assert (refusal(address, port, operator=(entry,), sender=()) is None) is allowed
    # The same entry from the sender opens nothing special.
    assert refusal(address, port, operator=(), sender=(entry,)) is not None


def test_a_name_must_be_listed_and_on_its_port() -> None:
    allowlist = Allowlist.of(OPERATOR, SENDER)
    assert allowlist.name_refusal("PBX.internal.example.", 443) is None
    assert allowlist.name_refusal("files.pbx.example", 8088) is None
    assert (
        allowlist.name_refusal("files.pbx.example", 80)
        == "the URL's host files.pbx.example is not allowed on port 80"
    )
    assert allowlist.name_refusal("localhost", 80) == "the URL's host localhost is not allowed"
    assert (
        allowlist.name_refusal("0x7f000001", 80)
        == "the URL's host '0x7f000001' is not a valid host"
    )


def test_the_sender_is_never_a_name() -> None:
    # A stored sender is an address or a network; a name there allows nothing.
    assert Allowlist.of((), ("pbx.internal.example",)).entries == ()


def test_an_empty_allowlist_allows_nothing() -> None:
    empty = Allowlist.of(())
    assert empty.name_refusal("pbx.example", 80) is not None
    assert empty.address_refusal(ipaddress.ip_address("10.0.0.1"), 80, named=False) is not None
