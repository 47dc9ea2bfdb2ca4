"""An email address in the form SMTP and headers carry it: the domain in ASCII (IDNA).

Addresses are stored in email-validator's normalised form, whose domain is Unicode
(`ana@bücher.de`, whichever form the billing system sent). A relay takes a Unicode domain
only with SMTPUTF8, and a header must not carry an address as an RFC 2047 encoded word,
so the domain always goes out as its A-label (`ana@xn--bcher-kva.de`). A local part
that is not ASCII has no such form: it needs a relay that offers SMTPUTF8 (RFC 6531),
and the message then carries it as UTF-8 (RFC 6532).
"""

from __future__ import annotations

import email.utils
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

# The second import of email-validator (the catalogue's is the first): the same library
# that normalised the address gives its ASCII domain back, by the same IDNA rules.
from email_validator import EmailNotValidError, validate_email


class Unsendable(ValueError):
    """The stored address cannot be written as an SMTP address at all."""


@functools.lru_cache(maxsize=4096)
def wire_form(address: str) -> str:
    """`address` with its domain in ASCII; raises `Unsendable`."""
    if address.isascii():  # nearly every address: nothing to convert
        return address
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        raise Unsendable(f"not an address notifyd can send to: {error}") from None
    return f"{valid.local_part}@{valid.ascii_domain}"


def needs_smtputf8(*addresses: str) -> bool:
    """Whether an envelope with these addresses (in wire form) needs SMTPUTF8."""
    return not all(address.isascii() for address in addresses)


def wire_mailbox(mailbox: str) -> str:
    """`Name <address>` (the configured sender) with the address in wire form; unchanged
    when the address cannot be converted: it then fails where it is used, with a reason."""
    address = email.utils.parseaddr(mailbox)[1]
    try:
        wire = wire_form(address)
    except Unsendable:
        return mailbox
    return mailbox.replace(address, wire) if wire != address else mailbox


@dataclass(frozen=True)
class Origin:
    """Who a stream's messages are from: the From mailbox (`Name <address>`, in wire form),
    its display name by language ([smtp] sender_names), and the Reply-To, if any."""

    sender: str
    names: Mapping[str, str] = field(default_factory=dict)
    reply_to: str = ""

    @classmethod
    def of(cls, sender: str, names: Mapping[str, str], reply_to: str = "") -> Origin:
        return cls(wire_mailbox(sender), dict(names), wire_mailbox(reply_to) if reply_to else "")

    def sender_in(self, language: str) -> str:
        """The From mailbox for a notice in `language`: the same address, the display name
        the subscriber reads (a Romanian name on an English email reads as a mistake)."""
        name = self.names.get(language)
        if not name:
            return self.sender
        # Quoted as is; mime.address_header encodes it (RFC 2047) when it is not ASCII.
        return f'"{name}" <{email.utils.parseaddr(self.sender)[1]}>'
