"""Amazon SES's bounces and complaints through SNS (issue 19), posted to /v1/reports/<source>
as SNS posts them (text/plain JSON, signed with the key of a certificate SNS serves): a
signed notification of the source's topic acts as any report does; a forged signature, a
certificate URL on another host (refused before any fetch), another topic or a stale
Timestamp is refused 401 and changes nothing; a subscription confirmation fetches its
SubscribeURL once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from notifyd.settings import Settings
from tests.conftest import Running, SmtpSink, load_config, running_daemon, smtp_server
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import post, subscribe
from tests.integration.report_support import ANA, after_complaint, health, offers, sent_notice
from tests.integration.sns_support import (
    OTHER_TOPIC,
    FakeSns,
    fake_sns,
    ses_bounce,
    ses_event,
    ses_source,
)

BO = "bo@client.example"
CERTIFICATE = "/SimpleNotificationService-test.pem"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with smtp_server(SmtpSink()) as served:
        yield served


@pytest.fixture
async def sns(tmp_path: Path) -> AsyncIterator[FakeSns]:
    async with fake_sns(tmp_path) as served:
        yield served


def settings_for(tmp_path: Path, database_url: str, sink: SmtpSink, sns: FakeSns) -> Settings:
    config = admin_config(tmp_path, database_url, sink.port)
    config["delivery"].update(bounce_limit=3)
    config["sources.ses"] = ses_source(sns)
    return load_config(tmp_path, config)


async def post_sns(
    daemon: Running, body: dict[str, Any], *, logged: bool = True
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """POST as SNS does (its JSON as text/plain); status, answer, the daemon's log lines
    (none when not `logged`: capturing them is not for posts running at once)."""
    headers = {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": str(body.get("Type")),
        "x-amz-sns-topic-arn": str(body.get("TopicArn")),
    }
    capture: AbstractContextManager[list[MutableMapping[str, Any]]] = (
        structlog.testing.capture_logs() if logged else nullcontext([])
    )
    with capture as logs:
        async with daemon.session.post(
            f"{daemon.base_url}/v1/reports/ses", data=json.dumps(body).encode(), headers=headers
        ) as response:
            answer = await response.json()
            status = response.status
    return status, answer, [dict(entry) for entry in logs]


async def test_signed_ses_bounces_act_and_forgeries_do_not(
    tmp_path: Path, database_url: str, sink: SmtpSink, sns: FakeSns, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink, sns)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {}, email=ANA)
        await post(daemon, "fax.sent", "acc-1")
        notice = await sent_notice(db, "fax.sent")
        # One bounce naming two recipients of the message (SES may batch them).
        hard = ses_bounce("Permanent", notice["message_id"], [ANA, BO])
        genuine = sns.notification(hard)
        forged = {**genuine, "Message": genuine["Message"].replace("Permanent", "Transient")}
        elsewhere = sns.notification(hard, SigningCertURL=sns.url(CERTIFICATE, host="127.0.0.1"))
        # Two at once, as SNS posts in parallel: they wait for one fetch of the certificate.
        forged_v1 = {**sns.notification(hard, version="1"), "Timestamp": forged["Timestamp"]}
        at_once = await asyncio.gather(
            post_sns(daemon, forged, logged=False), post_sns(daemon, forged_v1, logged=False)
        )
        refused = [
            await post_sns(daemon, sns.notification(hard, TopicArn=OTHER_TOPIC)),
            await post_sns(daemon, sns.notification(hard, Timestamp="2020-01-01T00:00:00.000Z")),
        ]
        fetches_before = sum(sns.fetches.values())
        refused.append(await post_sns(daemon, elsewhere))
        fetched_elsewhere = sum(sns.fetches.values()) - fetches_before
        after_refused = (await state_of(db, notice), await health(db, ANA))
        soft = await post_sns(
            daemon,
            sns.notification(ses_bounce("Transient", notice["message_id"], [ANA], "4.2.2")),
        )
        # SignatureVersion 1 (SHA1), SNS's default for a topic.
        done = await post_sns(daemon, sns.notification(hard, version="1"))
        # SNS's host cannot give the certificate now: 503, SNS posts again later.
        unreachable = await post_sns(
            daemon, sns.notification(hard, SigningCertURL=sns.url("/missing.pem"))
        )
        delivery = await post_sns(
            daemon, sns.notification(ses_event("Delivery", notice["message_id"], [ANA]))
        )
        row = await db.fetchrow("SELECT state, smtp_reply FROM notices WHERE id = $1", notice["id"])
        record = await health(db, ANA)
    assert [(status, answer["error"]) for status, answer, _ in (*at_once, *refused)] == [
        (401, "bad_signature")
    ] * 5
    assert fetched_elsewhere == 0
    assert after_refused == ("sent", None)
    answers = [(status, answer["action"], answer["reason"]) for status, answer, _ in (soft, done)]
    assert answers == [(200, "soft_bounce", "4.2.2"), (200, "hard_bounce", "5.1.1")]
    assert done[1]["notice_id"] == str(notice["id"])
    assert row is not None
    assert (row["state"], row["smtp_reply"][:30]) == ("failed", "bounce report 5.1.1: 550 5.1.1")
    assert record is not None
    assert (record["hard_bounces"], record["soft_bounces"]) == (1, 1)
    assert (delivery[0], delivery[1]["action"]) == (200, "nothing")
    assert (unreachable[0], unreachable[1]["error"]) == (503, "unavailable")
    # The certificate fetched once, kept for the messages after it.
    assert sns.fetches[CERTIFICATE] == 1
    logged = [line for _, _, lines in (*refused, soft, done, delivery) for line in lines]
    assert logged
    assert "@" not in repr(logged)


async def test_an_ses_complaint_withdraws_consent(
    tmp_path: Path, database_url: str, sink: SmtpSink, sns: FakeSns, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink, sns)
    async with running_daemon(settings) as daemon:
        sent, waiting = await offers(daemon, db)
        complaint = ses_event("Complaint", sent["message_id"], [ANA])
        status, answer, _ = await post_sns(daemon, sns.notification(complaint))
        after = await after_complaint(db, waiting)
    assert (status, answer["action"], answer["reason"]) == (200, "complaint", "abuse")
    assert after["waiting"][0] == "cancelled"
    assert after["suppressed"] == 1
    assert after["consent"][-1] == (False, "complaint")


async def test_a_subscription_confirms_itself_once(
    tmp_path: Path, database_url: str, sink: SmtpSink, sns: FakeSns
) -> None:
    settings = settings_for(tmp_path, database_url, sink, sns)
    async with running_daemon(settings) as daemon:
        other_topic = await post_sns(daemon, sns.confirmation(TopicArn=OTHER_TOPIC))
        confirmed = await post_sns(daemon, sns.confirmation())
        # A SubscribeURL on another host is not fetched.
        elsewhere = await post_sns(
            daemon,
            sns.confirmation(SubscribeURL=sns.url("/?Action=ConfirmSubscription", "127.0.0.1")),
        )
    subscribe_urls = {path: n for path, n in sns.fetches.items() if path != CERTIFICATE}
    assert (other_topic[0], confirmed[0], elsewhere[0]) == (401, 200, 401)
    assert (confirmed[1]["action"], confirmed[1]["reason"]) == ("nothing", "subscription_confirmed")
    assert subscribe_urls == {
        "/?Action=ConfirmSubscription&Token=2336412f37fb687f5d51e6e2425f004aed": 1
    }
    assert any(line["event"] == "sns subscription confirmed" for line in confirmed[2])


def test_an_ses_source_needs_its_topics(tmp_path: Path) -> None:
    """An "ses" source names its SNS topics (ARNs), and takes no other kind's credentials."""
    cases: list[dict[str, Any]] = [
        {"kind": "ses"},
        {"kind": "ses", "topic_arns": ["notifyd-ses"]},
        {"kind": "ses", "topic_arns": ["arn:aws:sns:eu-west-1:123456789012:t"], "user": "u"},
        {
            "kind": "ses",
            "topic_arns": ["arn:aws:sns:eu-west-1:123456789012:t"],
            "certificate_hosts": "(unclosed",
        },
    ]
    for source in cases:
        config = admin_config(tmp_path, "postgresql://x/y", None)
        config["sources.esp"] = source
        with pytest.raises(Exception, match=r"sources\.esp|topic_arns|user|certificate_hosts"):
            load_config(tmp_path, config)


async def state_of(db: asyncpg.Connection, notice: asyncpg.Record) -> str:
    return str(await db.fetchval("SELECT state FROM notices WHERE id = $1", notice["id"]))
