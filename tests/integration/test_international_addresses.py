"""Internationalised addresses (issue 16, item 4): an address stored in email-validator's
normalised form has a Unicode domain; it goes out in its ASCII (IDNA) form in the envelope
and the To header, and a non-ASCII local part needs SMTPUTF8 (RFC 6531) from the relay or
fails with a reason. Against a real aiosmtpd, with and without PIPELINING."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    WAIT,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
    smtp_server,
)
from tests.integration.catalogue_support import RawSink

ASCII_FORM = "ana@xn--bcher-kva.de"


@dataclass
class OptionsSink(RawSink):
    """Also keeps each message's MAIL parameters (SMTPUTF8)."""

    mail_options: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mail_options.append(list(envelope.mail_options))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(params=[True, False], ids=["pipelining", "without"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
async def relay(pipelining: bool) -> AsyncIterator[OptionsSink]:
    sink = OptionsSink(pipelining=pipelining)
    async with smtp_server(sink):
        yield sink


@pytest.fixture
async def utf8_relay(pipelining: bool) -> AsyncIterator[OptionsSink]:
    sink = OptionsSink(pipelining=pipelining)
    async with smtp_server(sink, enable_SMTPUTF8=True):
        yield sink


async def welcome(
    tmp_path: Path, database_url: str, sink: SmtpSink, db: asyncpg.Connection, *emails: str
) -> list[asyncpg.Record]:
    """Create an account for each address (its welcome email) and wait until every notice
    has left `sending` and `queued` for good or was sent."""
    settings = load_config(tmp_path, base_config(tmp_path, database_url, sink.port))
    async with running_daemon(settings) as daemon:
        for n, address in enumerate(emails):
            event = sample_event("account.created", f"acc-{n}", email=address)
            status, body = await daemon.post("billing", event, BILLING_SECRET)
            assert status == 202, body
        async with asyncio.timeout(WAIT):
            while await db.fetchval(
                "SELECT count(*) FROM notices WHERE state IN ('sent', 'failed')"
            ) < len(emails):
                await asyncio.sleep(0.05)
    return list(await db.fetch("SELECT * FROM notices ORDER BY account_id"))


async def test_a_unicode_domain_goes_out_in_its_ascii_form(
    tmp_path: Path, database_url: str, relay: OptionsSink, db: asyncpg.Connection
) -> None:
    # email-validator stores the Unicode form, whichever form the billing system sent.
    [notice] = await welcome(tmp_path, database_url, relay, db, ASCII_FORM)
    assert notice["recipient"] == "ana@bücher.de"
    assert notice["state"] == "sent"
    assert relay.envelopes[0][1] == [ASCII_FORM]
    assert f"\r\nTo: {ASCII_FORM}\r\n".encode() in relay.raws[0]
    assert relay.messages[0]["To"] == ASCII_FORM


async def test_a_non_ascii_local_part_goes_out_with_smtputf8_where_the_relay_offers_it(
    tmp_path: Path, database_url: str, utf8_relay: OptionsSink, db: asyncpg.Connection
) -> None:
    [notice] = await welcome(tmp_path, database_url, utf8_relay, db, "ștefan@bücher.de")
    assert notice["state"] == "sent"
    assert utf8_relay.envelopes[0][1] == ["ștefan@xn--bcher-kva.de"]
    assert "SMTPUTF8" in utf8_relay.mail_options[0]
    # RFC 6532: the address as UTF-8 in the header, not an RFC 2047 encoded word.
    assert "\r\nTo: ștefan@xn--bcher-kva.de\r\n".encode() in utf8_relay.raws[0]


async def test_a_non_ascii_local_part_fails_with_a_reason_where_the_relay_lacks_smtputf8(
    tmp_path: Path, database_url: str, relay: OptionsSink, db: asyncpg.Connection
) -> None:
    first, second = await welcome(
        tmp_path, database_url, relay, db, "ștefan@bücher.de", "ion@client.example"
    )
    assert first["state"] == "failed"
    assert "SMTPUTF8" in first["last_error"]
    assert first["attempts"] == 1
    # The address's fault on this relay, not the relay's nor a bounce; others go on.
    assert await db.fetchval("SELECT count(*) FROM address_health") == 0
    assert second["state"] == "sent"
    assert relay.envelopes == [("notificari@voip.example", ["ion@client.example"])]
