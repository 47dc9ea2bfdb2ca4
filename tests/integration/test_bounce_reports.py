"""Bounces and complaints that come back after the relay said 250 (issue 19): every message
has its own envelope sender (VERP, [smtp] bounce_domain); the relay's DSN and ARF reports
are piped by contrib/postfix/notifyd-bounce (run as Postfix runs it) to the `mta` source.
A hard bounce counts as a 5xx to RCPT does and fails the notice; a soft one is counted
only; a complaint suppresses marketing for the address and withdraws consent; a report
that names no notice of ours, or a forged token, changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from notifyd.settings import Settings
from tests.conftest import Running, SmtpSink, load_config, running_daemon, smtp_server
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import post, subscribe
from tests.integration.queue_support import settled_notices
from tests.integration.report_support import (
    ANA,
    EX_TEMPFAIL,
    MTA_SECRET,
    Piped,
    after_complaint,
    health,
    offers,
    pipe,
    sample,
    sent_notice,
)

BOUNCE_DOMAIN = "bounces.voip.example"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    # As Postfix does: the envelope sender must reach the relay through pipelined sends.
    async with smtp_server(SmtpSink(pipelining=True)) as served:
        yield served


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "mta.secret"
    path.write_text(MTA_SECRET + "\n")
    return path


def settings_for(
    tmp_path: Path, database_url: str, sink: SmtpSink, *, verp: bool = True, **sections: Any
) -> Settings:
    config = admin_config(tmp_path, database_url, sink.port)
    config["delivery"].update(bounce_limit=3)
    if verp:
        config["smtp"]["bounce_domain"] = BOUNCE_DOMAIN
    config["sources.mta"] = {"kind": "mta", "secrets": [MTA_SECRET]}
    for section, values in sections.items():
        config.setdefault(section.replace("__", "."), {}).update(values)
    return load_config(tmp_path, config)


def reports_url(daemon: Running, source: str = "mta") -> str:
    return f"{daemon.base_url}/v1/reports/{source}"


def envelope_sender(sink: SmtpSink, message_id: str) -> str:
    [sender] = [
        sender
        for message, (sender, _) in zip(sink.messages, sink.envelopes, strict=True)
        if message["Message-ID"] == message_id
    ]
    return sender


async def report(
    daemon: Running, secret_file: Path, name: str, to: str, notice: asyncpg.Record, **fill: Any
) -> tuple[Piped, dict[str, Any]]:
    """Pipe the sample `name` about `notice` as Postfix delivers a report to `to`; the
    script's exit and the daemon's 'bounce report' log line."""
    filled: dict[str, Any] = {"bounce_address": to, "message_id": notice["message_id"], **fill}
    raw = sample(name, recipient=notice["recipient"], **filled)
    with structlog.testing.capture_logs() as logs:
        piped = await pipe(reports_url(daemon), secret_file, to, raw)
    [line] = [dict(entry) for entry in logs if entry["event"] == "bounce report"]
    return piped, line


async def test_dsns_for_verp_senders_fail_their_notices_and_make_the_address_undeliverable(
    tmp_path: Path,
    database_url: str,
    sink: SmtpSink,
    db: asyncpg.Connection,
    secret_file: Path,
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    samples = ["postfix-hard.eml", "gmail-hard.eml", "microsoft-hard-8bit.eml"]
    decisions, senders = [], []
    counts: list[tuple[Any, ...]] = []
    notices: list[asyncpg.Record] = []
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {}, email=ANA)
        links = daemon.daemon.links
        assert links is not None
        for n, name in enumerate(samples, start=1):
            await post(daemon, "fax.sent", "acc-1", remote_number=f"+4021555010{n}")
            notice = await sent_notice(db, "fax.sent")
            sender = envelope_sender(sink, notice["message_id"])
            senders.append((notice["id"], sender, links.bounce_token(notice["id"])))
            piped, line = await report(daemon, secret_file, name, sender, notice)
            decisions.append((piped.code, line["action"], line["reason"]))
            notices.append(
                await db.fetchrow(  # type: ignore[arg-type]
                    "SELECT state, smtp_reply, last_error FROM notices WHERE id = $1",
                    notice["id"],
                )
            )
            counts.append(tuple(await health(db, ANA) or ())[:3])
        # The same report again (Postfix retrying after a lost answer): nothing more.
        piped_again, again = await report(daemon, secret_file, samples[0], senders[0][1], notice)
        # The address is undeliverable: the next fax is not even queued.
        skipped = await post(daemon, "fax.sent", "acc-1", remote_number="+40215550109")
        queued = await db.fetchval(
            "SELECT count(*) FROM notices WHERE event_id = $1", skipped["event_id"]
        )
    for notice_id, sender, token in senders:
        assert sender == f"bounce+{token}@{BOUNCE_DOMAIN}"
        assert len(token) == 32
        # Opaque: neither the notice's id nor the address shows in it.
        assert notice_id.hex[:8] not in token
        assert "ana" not in token
    assert all(
        message["From"] == "Operator VoIP <notificari@voip.example>" for message in sink.messages
    )
    assert decisions == [
        (0, "hard_bounce", "5.1.1"),
        (0, "hard_bounce", "5.1.1"),
        (0, "hard_bounce", "5.1.10"),
    ]
    assert [row["state"] for row in notices] == ["failed"] * 3
    assert notices[0]["smtp_reply"].startswith("bounce report 5.1.1: 550 5.1.1")
    assert "RESOLVER.ADR.RecipientNotFound" in notices[2]["last_error"]
    # (hard, soft, undeliverable since): one more each time, undeliverable at the third.
    assert [(hard, soft, since is not None) for hard, soft, since in counts] == [
        (1, 0, False),
        (2, 0, False),
        (3, 0, True),
    ]
    assert (piped_again.code, again["action"], again["reason"]) == (0, "nothing", "notice_failed")
    assert queued == 0
    # Every message went through the pipelined transaction with its own sender.
    assert sink.pipelined_mails == len(sink.messages) == 4
    record = await health(db, ANA)
    assert record is not None
    assert record["hard_bounces"] == 3


async def test_soft_bounces_are_counted_and_nothing_else(
    tmp_path: Path,
    database_url: str,
    sink: SmtpSink,
    db: asyncpg.Connection,
    secret_file: Path,
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {}, email=ANA)
        await post(daemon, "fax.sent", "acc-1")
        notice = await sent_notice(db, "fax.sent")
        sender = envelope_sender(sink, notice["message_id"])
        lines = []
        for name in ("postfix-delayed.eml", "postfix-expired-4xx.eml"):
            piped, line = await report(daemon, secret_file, name, sender, notice)
            assert piped.code == 0, piped.stderr
            lines.append((line["action"], line["reason"]))
        await post(daemon, "fax.sent", "acc-1", remote_number="+40215550109")
        await settled_notices(db)
        states = await db.fetch("SELECT state FROM notices WHERE kind = 'fax.sent'")
    assert lines == [("soft_bounce", "4.4.1"), ("soft_bounce", "4.2.2")]
    record = await health(db, ANA)
    assert record is not None
    assert (record["soft_bounces"], record["hard_bounces"], record["undeliverable_at"]) == (
        2,
        0,
        None,
    )
    # The reported notice stays sent, and the address still gets the next one.
    assert [row["state"] for row in states] == ["sent", "sent"]


async def test_a_soft_bounce_posted_twice_is_counted_once(
    tmp_path: Path,
    database_url: str,
    sink: SmtpSink,
    db: asyncpg.Connection,
    secret_file: Path,
) -> None:
    """The pipe script retried after a timeout (the report reached notifyd the first time)
    posts the same report again: one soft bounce, not two. Another status for the same
    message is another trouble, and counts."""
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {}, email=ANA)
        await post(daemon, "fax.sent", "acc-1")
        notice = await sent_notice(db, "fax.sent")
        sender = envelope_sender(sink, notice["message_id"])
        lines = []
        for name in ("postfix-delayed.eml", "postfix-delayed.eml", "postfix-expired-4xx.eml"):
            piped, line = await report(daemon, secret_file, name, sender, notice)
            assert piped.code == 0, piped.stderr
            lines.append((line["action"], line["reason"]))
        status, exported = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/export")
    assert status == 200, exported
    # The subscriber's export shows what was counted (docs/privacy.md).
    assert [r["status"] for r in exported["soft_bounce_reports"]] == ["4.4.1", "4.2.2"]
    assert lines == [
        ("soft_bounce", "4.4.1"),
        ("nothing", "reported_already"),
        ("soft_bounce", "4.2.2"),
    ]
    record = await health(db, ANA)
    assert record is not None
    assert record["soft_bounces"] == 2


async def test_a_complaint_suppresses_marketing_at_once_and_withdraws_consent(
    tmp_path: Path,
    database_url: str,
    sink: SmtpSink,
    db: asyncpg.Connection,
    secret_file: Path,
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        sent, waiting = await offers(daemon, db)
        sender = envelope_sender(sink, sent["message_id"])
        piped, line = await report(daemon, secret_file, "arf-complaint.eml", sender, sent)
        after = await after_complaint(db, waiting)
        # The same complaint again: already suppressed, nothing recorded twice.
        _, again = await report(daemon, secret_file, "arf-complaint.eml", sender, sent)
    assert piped.code == 0, piped.stderr
    assert (line["action"], line["reason"]) == ("complaint", "abuse")
    assert after["waiting"] == (
        "cancelled",
        "cancelled: marketing consent withdrawn via complaint",
    )
    assert after["suppressed"] == 1
    assert after["consent"] == [(True, "subscriber"), (False, "complaint")]
    assert after["audit"] == [("mail report", "consent.withdrawn")]
    assert (again["action"], again["reason"]) == ("nothing", "already_suppressed")
    # A complaint is no bounce: the address stays deliverable.
    assert await health(db, ANA) is None


async def test_without_verp_a_feedback_loop_complaint_maps_by_its_message_id(
    tmp_path: Path,
    database_url: str,
    sink: SmtpSink,
    db: asyncpg.Connection,
    secret_file: Path,
) -> None:
    settings = settings_for(tmp_path, database_url, sink, verp=False)
    async with running_daemon(settings) as daemon:
        sent, waiting = await offers(daemon, db)
        sender = envelope_sender(sink, sent["message_id"])
        piped, line = await report(
            daemon, secret_file, "fbl-complaint-8bit.eml", "fbl@voip.example", sent
        )
        after = await after_complaint(db, waiting)
    # VERP off: the configured sender, as before.
    assert sender == "notificari@voip.example"
    assert piped.code == 0, piped.stderr
    assert (line["action"], line["notice_id"]) == ("complaint", str(sent["id"]))
    assert after["waiting"][0] == "cancelled"
    assert after["consent"][-1] == (False, "complaint")


async def test_forged_tokens_and_reports_of_nothing_of_ours_change_nothing(
    tmp_path: Path,
    database_url: str,
    sink: SmtpSink,
    db: asyncpg.Connection,
    secret_file: Path,
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {}, email=ANA)
        await post(daemon, "fax.sent", "acc-1")
        notice = await sent_notice(db, "fax.sent")
        real = envelope_sender(sink, notice["message_id"])
        token = real.split("+", 1)[1].split("@", 1)[0]
        # One character changed: the tag no longer matches.
        forged = real.replace(token, ("a" if token[0] != "a" else "b") + token[1:])
        cases = [
            ("postfix-hard.eml", forged, {}),
            # The notice's real Message-ID does not rescue a forged token.
            ("arf-complaint.eml", forged, {}),
            ("autoreply.eml", real, {}),
            # No token, and a Message-ID of no notice of ours.
            ("postfix-hard.eml", "postmaster@voip.example", {"message_id": "<x@elsewhere>"}),
        ]
        outcomes, lines = [], []
        for name, to, fill in cases:
            piped, line = await report(daemon, secret_file, name, to, notice, **fill)
            outcomes.append((piped.code, line["action"], line["reason"]))
            lines.append(line)
        state = await db.fetchval("SELECT state FROM notices WHERE id = $1", notice["id"])
        suppressed = await db.fetchval("SELECT count(*) FROM suppressions")
    assert outcomes == [
        (0, "nothing", "forged_token"),
        (0, "nothing", "forged_token"),
        (0, "nothing", "not_a_bounce_or_complaint"),
        (0, "nothing", "no_notice_named"),
    ]
    assert state == "sent"
    assert await health(db, ANA) is None
    assert suppressed == 0
    # No address in what the daemon logged of them.
    assert "@" not in repr(lines)


async def test_the_pipe_script_tells_postfix_to_retry_or_to_return_the_report(
    tmp_path: Path,
    database_url: str,
    sink: SmtpSink,
    secret_file: Path,
) -> None:
    settings = settings_for(tmp_path, database_url, sink, webhooks={"max_body_bytes": 2048})
    raw = sample("postfix-hard.eml", bounce_address="bounce+x@" + BOUNCE_DOMAIN)
    small = sample("autoreply.eml")
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("whsec_" + "d3Jvbmctc2VjcmV0LWZvci10ZXN0cw==")
    async with running_daemon(settings) as daemon:
        url = reports_url(daemon)
        too_large = await pipe(url, secret_file, "bounce+x@" + BOUNCE_DOMAIN, raw)
        bad_secret = await pipe(url, wrong, "x@" + BOUNCE_DOMAIN, small)
        events_source = await pipe(reports_url(daemon, "pbx"), secret_file, "x@y.example", small)
        taken = await pipe(url, secret_file, "x@" + BOUNCE_DOMAIN, small)
    # The daemon is stopped: its port refuses.
    down = await pipe(url, secret_file, "x@" + BOUNCE_DOMAIN, small)
    no_secret = await pipe(url, tmp_path / "missing.secret", "x@" + BOUNCE_DOMAIN, small)
    assert len(raw) > 2048 > len(small)
    assert taken.code == 0, taken.stderr
    assert (too_large.code, "413") == (65, too_large.stderr.split("(")[1][:3])
    for piped in (bad_secret, events_source, down, no_secret):
        assert piped.code == EX_TEMPFAIL, piped.stderr
        assert piped.stderr.startswith("notifyd-bounce: ")
        assert piped.stderr.count("\n") == 1
    assert "401" in bad_secret.stderr
    assert "404" in events_source.stderr
    assert "unreachable" in down.stderr
    assert "no usable secret" in no_secret.stderr
