"""Addresses as they go out (issue 16, item 4): the domain as its A-label, never Unicode."""

from __future__ import annotations

import pytest

from notifyd.mail import mime
from notifyd.mail.addresses import Unsendable, needs_smtputf8, wire_form
from notifyd.mail.rendering import Renderer
from tests.unit.rendering_support import NOW, notice


def test_an_ascii_address_is_sent_as_stored() -> None:
    assert wire_form("Ana.Pop@client.example") == "Ana.Pop@client.example"


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ("ana@bücher.de", "ana@xn--bcher-kva.de"),
        ("ion@пример.рф", "ion@xn--e1afmkfd.xn--p1ai"),
        ("ștefan@bücher.de", "ștefan@xn--bcher-kva.de"),
    ],
)
def test_a_unicode_domain_goes_out_as_its_a_label(stored: str, sent: str) -> None:
    assert wire_form(stored) == sent


def test_only_a_non_ascii_local_part_needs_smtputf8() -> None:
    assert not needs_smtputf8("notificari@voip.example", wire_form("ana@bücher.de"))
    assert needs_smtputf8("notificari@voip.example", wire_form("ștefan@bücher.de"))


def test_an_address_with_no_sendable_form_is_refused_with_a_reason() -> None:
    with pytest.raises(Unsendable, match="not an address notifyd can send to"):
        wire_form("ana@bücher..de")


def test_the_to_header_carries_the_address_never_an_encoded_word() -> None:
    # RFC 2047 §5 forbids encoded words in an address; RFC 6532 carries it as UTF-8.
    assert mime.mailbox_header("To", "ștefan@xn--bcher-kva.de") == (
        "To: ștefan@xn--bcher-kva.de\r\n".encode()
    )
    with pytest.raises(mime.HeaderInjection):
        mime.mailbox_header("To", "a@b.example\r\nBcc: c@d.example")


def test_a_sender_with_a_unicode_domain_goes_out_in_its_ascii_form() -> None:
    # An operator's own IDN domain: its From header could not be written at all.
    sender = "Operator VoIP <notificari@operator-ț.ro>"
    message = Renderer(sender).mail(notice("call.missed", "ro"), NOW)

    assert b"\r\nFrom: Operator VoIP <notificari@xn--operator--ymd.ro>\r\n" in b"\r\n" + message
