"""Bounce and complaint reports read (mail/reports.py) from the samples of tests/reports/,
and the bounce tokens of envelope senders (links.py): opaque, short, and readable only
with a configured key."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from notifyd.intake.reports import bounce_token
from notifyd.links import Links
from notifyd.mail.reports import Kind, parse
from notifyd.settings import SmtpSettings
from tests.integration.report_support import sample

ID = "<0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0@voip.example>"
VERP = "bounce+abc@bounces.voip.example"


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("postfix-hard.eml", Kind.FAILED, "5.1.1"),
        ("gmail-hard.eml", Kind.FAILED, "5.1.1"),
        ("microsoft-hard-8bit.eml", Kind.FAILED, "5.1.10"),
        ("postfix-delayed.eml", Kind.DELAYED, "4.4.1"),
        ("postfix-expired-4xx.eml", Kind.DELAYED, "4.2.2"),
        ("arf-complaint.eml", Kind.COMPLAINT, ""),
        ("fbl-complaint-8bit.eml", Kind.COMPLAINT, ""),
        ("autoreply.eml", None, ""),
    ],
)
def test_each_sample_reads_as_what_it_is(name: str, kind: Kind | None, status: str) -> None:
    raw = sample(name, bounce_address=VERP, message_id=ID, return_path="bounce+rp@b.example")
    report = parse(b"Notifyd-Envelope-Recipient: " + VERP.encode() + b"\n" + raw)
    assert (report.kind, report.status) == (kind, status)
    assert report.bounce_address == VERP
    if kind is not None:
        assert report.message_id == ID
    if kind is Kind.COMPLAINT:
        # Original-Mail-From, or the enclosed message's Return-Path.
        assert report.quoted_bounce_address in (VERP, "bounce+rp@b.example")
        assert report.feedback_type == "abuse"


def test_the_notice_shows_the_remote_servers_words() -> None:
    report = parse(sample("microsoft-hard-8bit.eml", message_id=ID))
    assert report.reply == (
        "bounce report 5.1.10: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; "
        "Recipient not found by SMTP address lookup"
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff garbage",
        b"Content-Type: multipart/report; report-type=delivery-status\n\nno parts",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
        b"--x\nContent-Type: message/delivery-status\n\n\n--x--\n",
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\n\n",
    ],
)
def test_what_is_no_report_of_ours_is_named_so_without_raising(raw: bytes) -> None:
    report = parse(raw)
    assert report.kind is None
    assert report.why


def test_bounce_tokens_are_short_opaque_and_open_with_any_configured_key() -> None:
    notice = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    old, new = Links(["old-key"], "http://x"), Links(["new-key", "old-key"], "http://x")
    token = old.bounce_token(notice)
    assert len(token) == 32
    assert token == token.lower()
    assert token.isalnum()
    assert notice.hex[:6] not in token
    # Rotation: a bounce of a message sent under the old key still maps.
    assert new.bounced_notice(token) == notice
    # Relays may fold the case of a local part.
    assert new.bounced_notice(token.upper()) == notice
    assert Links(["another"], "http://x").bounced_notice(token) is None
    forged = ("b" if token[0] == "a" else "a") + token[1:]
    assert new.bounced_notice(forged) is None
    assert new.bounced_notice("not base32!") is None
    assert new.bounced_notice(token[:-8]) is None


def test_the_token_is_read_from_a_bounce_address_only() -> None:
    assert bounce_token("<Bounce+AbC@bounces.voip.example>", "bounce") == "abc"
    assert bounce_token("bounce@bounces.voip.example", "bounce") is None
    assert bounce_token("other+abc@bounces.voip.example", "bounce") is None
    assert bounce_token(None, "bounce") is None


def test_bounce_settings_take_a_domain_and_a_plain_local_part() -> None:
    smtp = SmtpSettings(bounce_domain="Bounces.Exemplu.ro.", bounce_local_part="ret-urn")
    assert smtp.bounce_domain == "bounces.exemplu.ro"
    assert SmtpSettings(bounce_domain="bounces.ţară.ro").bounce_domain == "bounces.xn--ar-kla59a.ro"
    for bad in ({"bounce_domain": "not a domain"}, {"bounce_local_part": "bounce+x"}):
        with pytest.raises(ValidationError):
            SmtpSettings.model_validate(bad)
