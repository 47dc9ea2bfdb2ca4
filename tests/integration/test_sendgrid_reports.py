"""Bounces and complaints from SendGrid's Signed Event Webhook (issue 19), posted to
/v1/reports/<source> as SendGrid posts them: a batch of events signed with ECDSA P-256 over
timestamp + body; a forged, unsigned or stale post is refused 401 and changes nothing; each
event of a valid one is acted on as an `mta` report is (a hard bounce fails its notice and
counts, a soft one is counted, a complaint suppresses marketing and withdraws consent) and
answered, in order, in one 200; a key that is not P-256 is refused when the config loads."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifyd.settings import Settings
from tests.conftest import SmtpSink, load_config, running_daemon, smtp_server
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import post, subscribe
from tests.integration.doc_support import like
from tests.integration.report_support import after_complaint, health, offers, sent_notice
from tests.integration.send_support import snippet
from tests.integration.sendgrid_support import (
    SIGNATURE,
    batch,
    event,
    new_key,
    post_events,
    public_text,
    signed,
)

KEY = new_key()
BO = "bo@client.example"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with smtp_server(SmtpSink()) as served:
        yield served


def settings_for(tmp_path: Path, database_url: str, sink: SmtpSink) -> Settings:
    config = admin_config(tmp_path, database_url, sink.port)
    config["delivery"].update(bounce_limit=3)
    # As docs/integrations.md sets it, with two keys while one is rotated (the old first).
    source = tomllib.loads(snippet("sendgrid-source"))["sources"]["sendgrid"]
    config["sources.sendgrid"] = {
        **source,
        "public_keys": [public_text(new_key()), public_text(KEY)],
    }
    return load_config(tmp_path, config)


async def test_a_signed_batch_is_acted_on_event_by_event(
    tmp_path: Path, database_url: str, sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-2", {}, email=BO)
        await post(daemon, "fax.sent", "acc-2")
        fax = await sent_notice(db, "fax.sent")
        sent, waiting = await offers(daemon, db)
        body = batch(
            event("delivered", sent["message_id"], response="250 OK"),
            # Named by a unique argument; smtp-id SendGrid's own.
            event(
                "deferred",
                "<14c5d75ce93.dfd.64b469@ismtpd-555>",
                response="421 try again later",
                **{"notifyd-message-id": fax["message_id"]},
            ),
            event(
                "bounce",
                fax["message_id"],
                type="bounce",
                status="5.1.1",
                reason="550 5.1.1 The email account that you tried to reach does not exist",
            ),
            event("spamreport", sent["message_id"]),
            event("dropped", fax["message_id"], reason="Unsubscribed Address"),
        )
        status, answer, logs = await post_events(daemon, "sendgrid", body, signed(KEY, body))
        after = await after_complaint(db, waiting)
        row = await db.fetchrow("SELECT state, smtp_reply FROM notices WHERE id = $1", fax["id"])
        record = await health(db, BO)
    assert status == 200
    assert [(e["action"], e["reason"], e["notice_id"]) for e in answer["events"]] == [
        ("nothing", "not_a_bounce_or_complaint", None),
        ("soft_bounce", "4.0.0", str(fax["id"])),
        ("hard_bounce", "5.1.1", str(fax["id"])),
        ("complaint", "abuse", str(sent["id"])),
        ("nothing", "not_a_bounce_or_complaint", None),
    ]
    # The doc's sample answer is this one's hard bounce and a delivery, in that order.
    decisions = answer["events"]
    like(json.loads(snippet("sendgrid-answer")), {"events": [decisions[2], decisions[0]]})
    assert row is not None
    assert row["state"] == "failed"
    assert row["smtp_reply"].startswith("bounce report 5.1.1: sendgrid bounce: 550 5.1.1")
    assert record is not None
    assert (record["hard_bounces"], record["soft_bounces"]) == (1, 1)
    assert after["waiting"][0] == "cancelled"
    assert after["consent"][-1] == (False, "complaint")
    assert logs
    assert "@" not in repr(logs)


async def test_forged_unsigned_and_stale_posts_change_nothing(
    tmp_path: Path, database_url: str, sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-2", {}, email=BO)
        await post(daemon, "fax.sent", "acc-2")
        fax = await sent_notice(db, "fax.sent")
        body = batch(event("bounce", fax["message_id"], type="bounce", status="5.1.1"))
        other = batch(event("delivered", fax["message_id"]))
        forged_signature = {**signed(KEY, other), "Content-Type": "application/json"}
        cases = {
            "another key": signed(new_key(), body),
            "signed for another body": forged_signature,
            "no headers": {},
            "no signature": {k: v for k, v in signed(KEY, body).items() if k != SIGNATURE},
            "ten minutes old": signed(KEY, body, at=time.time() - 600),
            "not base64": {**signed(KEY, body), SIGNATURE: "not base64!"},
        }
        answers = {
            why: await post_events(daemon, "sendgrid", body, headers)
            for why, headers in cases.items()
        }
        state = await db.fetchval("SELECT state FROM notices WHERE id = $1", fax["id"])
        record = await health(db, BO)
    assert {why: (s, a["error"]) for why, (s, a, _) in answers.items()} == dict.fromkeys(
        cases, (401, "bad_signature")
    )
    assert "s from now" in answers["ten minutes old"][1]["detail"]
    assert state == "sent"
    assert record is None
    logged = [line for _, _, lines in answers.values() for line in lines]
    assert [line["event"] for line in logged] == ["report signature refused"] * len(cases)
    assert "@" not in repr(logged)


def test_a_key_that_is_not_p256_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_text = public_text(rsa_key)
    cases = {
        public_text(new_key(ec.SECP384R1())): "secp384r1 key; SendGrid signs with ECDSA on P-256",
        rsa_text: "RSAPublicKey key",
        "not-a-key": "is not a public key",
    }
    for text, said in cases.items():
        config = admin_config(tmp_path, "postgresql://x/y", None)
        config["sources.esp"] = {"kind": "sendgrid", "public_keys": [text]}
        with pytest.raises(Exception, match=said):
            load_config(tmp_path, config)
    stray = {"kind": "mailgun", "signing_keys": ["k"], "public_keys": [public_text(KEY)]}
    for wrong in ({"kind": "sendgrid"}, stray):
        config = admin_config(tmp_path, "postgresql://x/y", None)
        config["sources.esp"] = wrong
        with pytest.raises(Exception, match="public_keys"):
            load_config(tmp_path, config)
