"""The DNS records a sender domain needs for notifyd's mail to be trusted, and whether they
are published: SPF on the envelope sender's domain (naming the relay), the DKIM public key
of [dkim] (derived from its private keys: RSA, and Ed25519 when it dual-signs), DMARC on
the From domain, and with VERP the bounce domain's MX. `notifyd test-email` (relay_cli.py)
prints them after proving the relay.

DNS is asked through a `Resolver`: dnspython's (the system's servers, or one the operator
names), or a test's stand-in. A server that does not answer makes the check "not checked"
rather than "missing": the records to publish are printed either way.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver

from notifyd.mail.addresses import wire_form
from notifyd.mail.dkim import DkimError, load_key, public_record
from notifyd.settings import DkimSettings, SmtpSettings

FOUND, MISSING, DIFFERS = "found", "missing", "differs"


class DnsUnreachable(Exception):
    """No DNS server answered (no network, none configured, all timed out)."""


class Resolver(Protocol):
    async def lookup(self, name: str, rdtype: str) -> list[str]:
        """The records of `name` as text (TXT strings joined, MX as "pref host"); [] when
        there are none; DnsUnreachable when no server answers."""
        ...


@dataclass(frozen=True)
class Record:
    kind: str  # SPF, DKIM, DMARC, MX
    name: str
    rdtype: str
    value: str  # what to publish
    why: str


@dataclass(frozen=True)
class Checked:
    record: Record
    status: str  # found, missing, differs
    published: tuple[str, ...] = ()


class SystemResolver:
    """dnspython's resolver: the system's servers, or `nameserver` (an IP, optionally
    `IPv4:port`), each question given `seconds` in all."""

    def __init__(self, nameserver: str | None = None, seconds: float = 4.0) -> None:
        try:
            self.resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
        except dns.resolver.NoResolverConfiguration:
            self.resolver = dns.asyncresolver.Resolver(configure=False)  # none: unreachable
        if nameserver is not None:
            address, _, port = (
                nameserver.partition(":")
                if nameserver.count(":") == 1
                else (
                    nameserver,
                    "",
                    "",
                )
            )
            self.resolver.nameservers = [address]
            self.resolver.port = int(port or 53)
        self.resolver.lifetime = seconds

    async def lookup(self, name: str, rdtype: str) -> list[str]:
        if not self.resolver.nameservers:
            raise DnsUnreachable("no DNS server is configured")
        try:
            answer = await self.resolver.resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
            raise DnsUnreachable(str(error)) from None
        if rdtype == "MX":
            return [f"{r.preference} {r.exchange.to_text(omit_final_dot=True)}" for r in answer]
        return [b"".join(r.strings).decode(errors="replace") for r in answer]


def records_needed(smtp: SmtpSettings, dkim: DkimSettings) -> list[Record]:
    """What a stream's mail needs published (`smtp`: [smtp], or a stream's settings)."""
    sender_domain = wire_form(smtp.sender_address).rpartition("@")[2]
    envelope_domain = smtp.bounce_domain or sender_domain
    spf = _spf_mechanism(smtp.host)
    records = [
        Record(
            "SPF",
            envelope_domain,
            "TXT",
            f"v=spf1 {spf} ~all",
            f"lets the relay send as the envelope sender's domain ({spf}; keep any "
            "mechanisms already there)",
        )
    ]
    if dkim.enabled:
        assert dkim.private_key_file is not None
        keys = [(dkim.selector, dkim.private_key_file, "private_key_file")]
        if dkim.ed25519_key_file is not None:
            keys.append((dkim.ed25519_selector, dkim.ed25519_key_file, "ed25519_key_file"))
        records += [
            Record(
                "DKIM",
                f"{selector}._domainkey.{dkim.domain}",
                "TXT",
                dkim_record(path),
                f"the public half of [dkim] {setting}, which signs every notice",
            )
            for selector, path, setting in keys
        ]
    records.append(
        Record(
            "DMARC",
            f"_dmarc.{sender_domain}",
            "TXT",
            "v=DMARC1; p=none; adkim=r; aspf=r",
            "the From domain's policy (start with p=none, then quarantine once reports are clean)",
        )
    )
    if smtp.bounce_domain:
        records.append(
            Record(
                "MX",
                smtp.bounce_domain,
                "MX",
                "10 <the mail host that hands bounces to contrib/postfix/notifyd-bounce>",
                "bounces to the VERP envelope senders must reach notifyd",
            )
        )
    return records


def _spf_mechanism(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None and host != "localhost":
        return f"a:{host}"
    if address is not None and not address.is_loopback:
        return f"ip{address.version}:{address}"
    # A relay on this host sends from this host's own name and address.
    return f"a:{socket.getfqdn()}"


def dkim_record(path: Path) -> str:
    """`v=DKIM1; k=...; p=...` for the private key in `path` (RSA or Ed25519)."""
    try:
        return public_record(load_key(path))
    except DkimError as error:
        return f"v=DKIM1; p=<the public key of {path}: {error}>"


async def check(records: list[Record], resolver: Resolver) -> list[Checked]:
    """Each record's state in DNS; DnsUnreachable as soon as no server answers."""
    checked = []
    for record in records:
        published = tuple(await resolver.lookup(record.name, record.rdtype))
        checked.append(Checked(record, _status(record, published), published))
    return checked


def _status(record: Record, published: tuple[str, ...]) -> str:
    if record.kind == "MX":
        return FOUND if published else MISSING
    tag = {"SPF": "v=spf1", "DKIM": "v=dkim1", "DMARC": "v=dmarc1"}[record.kind]
    ours = [text for text in published if text.replace(" ", "").lower().startswith(tag)]
    if not ours:
        # A DKIM key record may leave out v=DKIM1 (RFC 6376 3.6.1): p= says it is one.
        ours = [text for text in published if record.kind == "DKIM" and "p=" in text]
    if not ours:
        return MISSING
    if record.kind == "SPF":
        mechanism = record.value.split()[1].lower()
        return FOUND if any(mechanism in text.lower().split() for text in ours) else DIFFERS
    if record.kind == "DKIM":
        key = _tag(record.value, "p")
        return FOUND if any(_tag(text, "p") == key for text in ours) else DIFFERS
    return FOUND


def _tag(record: str, name: str) -> str:
    """A tag's value in a `k=v; k=v` record, spaces removed (TXT strings may be split)."""
    for part in record.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return "".join(value.split())
    return ""
