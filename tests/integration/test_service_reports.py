"""Bounces and complaints from sending services' JSON webhooks (issue 19), posted to
/v1/reports/<source> as Postmark and Mailgun post them: each authenticated its own way
(a forged or stale one is refused 401 and changes nothing), mapped to its notice by the
original Message-ID, and acted on as an `mta` report is: a hard bounce fails the notice and
counts, a soft one is counted only, a complaint suppresses marketing and withdraws consent;
what is no bounce or names no notice of ours is answered 200 with why."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from notifyd.settings import Settings
from tests.conftest import Running, SmtpSink, load_config, running_daemon, smtp_server
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import post, subscribe
from tests.integration.doc_support import filled, merged
from tests.integration.report_support import ANA, after_complaint, health, offers, sent_notice
from tests.integration.send_support import snippet

PM_USER, PM_PASSWORD = "postmark", "c2VydmljZS1wYXNzd29yZC0x"
MG_KEY = "key-mailgun-signing-key-for-tests"
BOUNCE_DOMAIN = "bounces.voip.example"
BO = "bo@client.example"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with smtp_server(SmtpSink()) as served:
        yield served


def settings_for(tmp_path: Path, database_url: str, sink: SmtpSink) -> Settings:
    config = admin_config(tmp_path, database_url, sink.port)
    config["delivery"].update(bounce_limit=3)
    config["smtp"]["bounce_domain"] = BOUNCE_DOMAIN
    # As docs/integrations.md sets them, the elided values filled in (the doc's Postmark user
    # is PM_USER); Mailgun with two keys while one is rotated (the old first).
    merged(config, filled(snippet("postmark-source"), tmp_path, password=PM_PASSWORD))
    merged(config, filled(snippet("mailgun-source"), tmp_path))
    config["sources.mailgun"]["signing_keys"] = ["old-key", MG_KEY]
    return load_config(tmp_path, config)


async def post_report(
    daemon: Running, source: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """POST a service's webhook; its status, its body and the daemon's log lines of it."""
    with structlog.testing.capture_logs() as logs:
        async with daemon.session.post(
            f"{daemon.base_url}/v1/reports/{source}", json=body, headers=headers or {}
        ) as response:
            answer = await response.json()
            status = response.status
    return status, answer, [dict(entry) for entry in logs]


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def postmark_bounce(kind: str, message_id: str, **more: Any) -> dict[str, Any]:
    """A bounce as Postmark's webhook posts it (https://postmarkapp.com/email-webhooks)."""
    return {
        "RecordType": "Bounce",
        "ID": 42,
        "Type": kind,
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": ANA,
        "Content": f"Return-Path: <>\nMessage-ID: <bounce-1@pm.example>\n\n"
        f"From: notificari@voip.example\nMessage-ID: {message_id}\nSubject: x\n",
        **more,
    }


def mailgun_event(
    event: str, message_id: str, *, key: str = MG_KEY, at: float | None = None, **more: Any
) -> dict[str, Any]:
    """An event as Mailgun's webhook posts it, signed as Mailgun signs it
    (documentation.mailgun.com .../webhooks/securing-webhooks)."""
    timestamp, token = str(int(at if at is not None else time.time())), "t" * 50
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": digest},
        "event-data": {
            "event": event,
            "recipient": ANA,
            # Mailgun's own bounce address: not one of ours (another domain), not a token.
            "envelope": {"sender": "bounce+776ab3.5@mg.voip.example"},
            "message": {"headers": {"message-id": message_id.strip("<>")}},
            **more,
        },
    }


async def state_of(db: asyncpg.Connection, notice: asyncpg.Record) -> str:
    return str(await db.fetchval("SELECT state FROM notices WHERE id = $1", notice["id"]))


async def test_postmark_bounces_by_basic_auth(
    tmp_path: Path, database_url: str, sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {}, email=ANA)
        await post(daemon, "fax.sent", "acc-1")
        notice = await sent_notice(db, "fax.sent")
        hard = postmark_bounce("HardBounce", notice["message_id"])
        forged = [
            await post_report(daemon, "postmark", hard, basic(PM_USER, "wrong-password-123")),
            await post_report(daemon, "postmark", hard),
        ]
        after_forged = (await state_of(db, notice), await health(db, ANA))
        soft = await post_report(
            daemon,
            "postmark",
            # Content off in Postmark: the Message-ID from the metadata a header gave.
            postmark_bounce(
                "SoftBounce",
                "",
                Content="",
                Details="smtp;452 4.2.2 Mailbox full",
                Metadata={"notifyd-message-id": notice["message_id"]},
            ),
            basic(PM_USER, PM_PASSWORD),
        )
        done = await post_report(daemon, "postmark", hard, basic(PM_USER, PM_PASSWORD))
        delivery = {"RecordType": "Delivery", "MessageID": "x", "Recipient": ANA}
        other = await post_report(daemon, "postmark", delivery, basic(PM_USER, PM_PASSWORD))
        # Postmark's own MessageID alone names no notice of ours.
        unnamed = await post_report(
            daemon,
            "postmark",
            postmark_bounce("HardBounce", "", Content=""),
            basic(PM_USER, PM_PASSWORD),
        )
        row = await db.fetchrow("SELECT state, smtp_reply FROM notices WHERE id = $1", notice["id"])
    assert [(status, answer["error"]) for status, answer, _ in forged] == [
        (401, "bad_signature"),
        (401, "bad_signature"),
    ]
    assert after_forged == ("sent", None)
    assert (soft[0], soft[1]["action"], soft[1]["reason"]) == (200, "soft_bounce", "4.2.2")
    assert (done[0], done[1]["action"], done[1]["notice_id"]) == (
        200,
        "hard_bounce",
        str(notice["id"]),
    )
    assert row is not None
    assert row["state"] == "failed"
    assert row["smtp_reply"].startswith("bounce report 5.1.1: 550 5.1.1 The email account")
    record = await health(db, ANA)
    assert record is not None
    assert (record["hard_bounces"], record["soft_bounces"]) == (1, 1)
    assert (other[0], other[1]["action"], other[1]["reason"]) == (
        200,
        "nothing",
        "not_a_bounce_or_complaint",
    )
    assert (unnamed[1]["action"], unnamed[1]["reason"]) == ("nothing", "no_notice_named")
    # No address in anything the daemon logged of them.
    logged = [line for _, _, lines in (*forged, soft, done, other, unnamed) for line in lines]
    assert logged
    assert "@" not in repr(logged)


async def test_a_postmark_spam_complaint_withdraws_consent(
    tmp_path: Path, database_url: str, sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        sent, waiting = await offers(daemon, db)
        complaint = {
            **postmark_bounce("SpamComplaint", sent["message_id"]),
            "RecordType": "SpamComplaint",
        }
        status, answer, _ = await post_report(
            daemon, "postmark", complaint, basic(PM_USER, PM_PASSWORD)
        )
        after = await after_complaint(db, waiting)
    assert (status, answer["action"]) == (200, "complaint")
    assert after["waiting"][0] == "cancelled"
    assert after["suppressed"] == 1
    assert after["consent"][-1] == (False, "complaint")


async def test_mailgun_events_by_their_signature(
    tmp_path: Path, database_url: str, sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        # Another subscriber's fax, sent before acc-1's offer waits in its quiet hours.
        await subscribe(daemon, "acc-2", {}, email=BO)
        await post(daemon, "fax.sent", "acc-2")
        fax = await sent_notice(db, "fax.sent")
        sent, waiting = await offers(daemon, db)
        failed: dict[str, Any] = {
            "severity": "permanent",
            "delivery-status": {"code": 550, "message": "5.1.1 no"},
        }
        refused = [
            await post_report(
                daemon, "mailgun", mailgun_event("failed", fax["message_id"], key="k2", **failed)
            ),
            # Signed, but ten minutes ago: a replay.
            await post_report(
                daemon,
                "mailgun",
                mailgun_event("failed", fax["message_id"], at=time.time() - 600, **failed),
            ),
        ]
        unsigned = mailgun_event("failed", fax["message_id"], **failed)
        del unsigned["signature"]
        refused.append(await post_report(daemon, "mailgun", unsigned))
        after_refused = await state_of(db, fax)
        temporary = await post_report(
            daemon, "mailgun", mailgun_event("failed", fax["message_id"], severity="temporary")
        )
        permanent = await post_report(
            daemon, "mailgun", mailgun_event("failed", fax["message_id"], **failed)
        )
        complained = await post_report(
            daemon, "mailgun", mailgun_event("complained", sent["message_id"])
        )
        opened = await post_report(daemon, "mailgun", mailgun_event("opened", sent["message_id"]))
        after = await after_complaint(db, waiting)
        final = await state_of(db, fax)
    assert [(status, answer["error"]) for status, answer, _ in refused] == [
        (401, "bad_signature")
    ] * 3
    assert after_refused == "sent"
    answers = [(s, a["action"], a["reason"]) for s, a, _ in (temporary, permanent, complained)]
    assert answers == [
        (200, "soft_bounce", "4.0.0"),
        (200, "hard_bounce", "5.1.1"),
        (200, "complaint", "abuse"),
    ]
    assert final == "failed"
    assert after["consent"][-1] == (False, "complaint")
    assert after["waiting"][0] == "cancelled"
    assert (opened[0], opened[1]["action"]) == (200, "nothing")
    record = await health(db, BO)
    assert record is not None
    assert (record["hard_bounces"], record["soft_bounces"]) == (1, 1)
    logged = [
        line for _, _, lines in (*refused, temporary, permanent, complained) for line in lines
    ]
    assert "@" not in repr(logged)


def test_source_credentials_are_checked_when_the_config_loads(tmp_path: Path) -> None:
    """A postmark source needs its user and a long password; a mailgun source its keys; and
    neither takes Standard Webhooks secrets."""
    cases = [
        {"kind": "postmark", "user": "u", "password": "short"},
        {"kind": "postmark", "password": PM_PASSWORD},
        {"kind": "mailgun"},
        {"kind": "mailgun", "signing_keys": [MG_KEY], "user": "u"},
    ]
    for source in cases:
        config = admin_config(tmp_path, "postgresql://x/y", None)
        config["sources.esp"] = source
        with pytest.raises(Exception, match=r"sources\.esp|password|user|signing_keys"):
            load_config(tmp_path, config)
