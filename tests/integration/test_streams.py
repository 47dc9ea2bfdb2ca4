"""Mail streams (issue 20): with [smtp.streams.marketing], an offer leaves through its own
relay with its own From, envelope sender (its VERP bounce domain) and stream header, while
a transactional notice keeps [smtp]'s; without it, both leave through [smtp] as before.
The From display name follows the subscriber's language ([smtp] sender_names)."""

from __future__ import annotations

from collections import deque
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg

from notifyd.settings import MARKETING as MARKETING_STREAM
from notifyd.settings import TRANSACTIONAL
from tests.conftest import SmtpSink, eventually, load_config, running_daemon, smtp_server
from tests.integration.admin_support import admin_config, call
from tests.integration.consent_now_support import broadcast
from tests.integration.daemon_support import post, subscribe
from tests.integration.queue_support import settled_notices

NAMES = {"ro": "Notificări Exemplu", "en": "Example Notifications"}
MARKETING = {
    "host": "127.0.0.1",
    "sender": "Oferte Exemplu <oferte@news.voip.example>",
    "bounce_domain": "bounces.news.voip.example",
}


async def welcome_and_offer(daemon: Any, db: asyncpg.Connection) -> None:
    """An English subscriber who agreed to offers: the welcome (transactional), one offer."""
    await subscribe(daemon, "acc-1", {}, email="ana@client.example", language="en")
    given = {"marketing": True, "source": "subscriber", "wording_version": "v1"}
    assert (await call(daemon, "POST", "/v1/admin/subscribers/acc-1/consent", json=given))[0] == 201
    await broadcast(daemon, "marketing.offer")
    rows = await settled_notices(db)
    assert [(r["kind"], r["state"]) for r in rows] == [
        ("account.created", "sent"),
        ("marketing.offer", "sent"),
    ]


def by_kind(sink: SmtpSink) -> dict[str, tuple[str, EmailMessage]]:
    """Each message the sink took, by its stream header: (envelope sender, message)."""
    return {
        str(message["X-Notifyd-Stream"]): (envelope[0], message)
        for envelope, message in zip(sink.envelopes, sink.messages, strict=True)
    }


def sender(message: EmailMessage) -> Address:
    addresses = message["From"].addresses
    assert len(addresses) == 1
    found: Address = addresses[0]
    return found


async def test_each_stream_leaves_by_its_own_relay_with_its_own_envelope_sender(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with smtp_server(SmtpSink()) as marketing_sink:
        config = admin_config(tmp_path, database_url, smtp_sink.port)
        config["smtp"] |= {"bounce_domain": "bounces.voip.example"}
        config["smtp.sender_names"] = NAMES
        config["smtp.streams.marketing"] = {**MARKETING, "port": marketing_sink.port}
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            await welcome_and_offer(daemon, db)
    transactional = by_kind(smtp_sink)
    marketing = by_kind(marketing_sink)
    assert list(transactional) == ["transactional"]
    assert list(marketing) == ["marketing"]
    welcome_from, welcome = transactional["transactional"]
    offer_from, offer = marketing["marketing"]
    assert welcome_from.startswith("bounce+")
    assert welcome_from.endswith("@bounces.voip.example")
    assert offer_from.startswith("bounce+")
    assert offer_from.endswith("@bounces.news.voip.example")
    # The English subscriber reads [smtp]'s English name; the offer its own stream's sender.
    assert (sender(welcome).display_name, sender(welcome).addr_spec) == (
        "Example Notifications",
        "notificari@voip.example",
    )
    assert (sender(offer).display_name, sender(offer).addr_spec) == (
        "Oferte Exemplu",
        "oferte@news.voip.example",
    )


async def test_without_streams_both_leave_through_smtp_as_before(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await welcome_and_offer(daemon, db)
    sent = by_kind(smtp_sink)
    assert sorted(sent) == ["marketing", "transactional"]
    # No bounce domain: the envelope sender is [smtp] sender's address, for both.
    assert {envelope for envelope, _ in sent.values()} == {"notificari@voip.example"}
    assert {str(m["From"]) for _, m in sent.values()} == {"Operator VoIP <notificari@voip.example>"}
    assert smtp_sink.connections == 1  # one pool: the marketing stream shares it


async def test_a_marketing_relay_refusing_everything_does_not_stop_transactional_mail(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    refusing = SmtpSink(rcpt_replies=deque(["550 5.7.1 Relaying denied"] * 50))
    async with smtp_server(refusing) as marketing_sink:
        config = admin_config(tmp_path, database_url, smtp_sink.port)
        # One refusal opens a breaker, and its pause outlasts the test.
        config["delivery"] |= {"breaker_threshold": 1, "breaker_cooldown_seconds": 60}
        config["smtp.streams.marketing"] = {**MARKETING, "port": marketing_sink.port}
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            await subscribe(daemon, "acc-1", {}, email="ana@client.example")
            await smtp_sink.wait_for(1)  # the welcome
            given = {"marketing": True, "source": "subscriber", "wording_version": "v1"}
            await call(daemon, "POST", "/v1/admin/subscribers/acc-1/consent", json=given)
            await broadcast(daemon, "marketing.offer")
            breakers = daemon.daemon.dispatcher.outcomes.breakers  # type: ignore[union-attr]

            async def marketing_paused() -> bool:
                return breakers[MARKETING_STREAM].is_open

            await eventually(marketing_paused, "the marketing relay's breaker to open")
            await post(daemon, "call.missed", "acc-1")
            # Within seconds, not after the marketing relay's minute of pause.
            messages = await smtp_sink.wait_for(2, timeout=10)
            offer = await db.fetchrow("SELECT state FROM notices WHERE kind = 'marketing.offer'")
    assert messages[1]["X-Notifyd-Stream"] == "transactional"
    assert not breakers[TRANSACTIONAL].is_open
    assert refusing.messages == []
    assert offer is not None
    assert offer["state"] == "queued"  # held for the relay, not failed
