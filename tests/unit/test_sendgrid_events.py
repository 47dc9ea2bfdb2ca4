"""SendGrid's Event Webhook events read (mail/service_reports.py): which are bounces, soft or
hard, which complaints, and what names the notice; each as SendGrid's event reference
(twilio.com/docs/sendgrid/for-developers/tracking-events/event) describes it."""

from __future__ import annotations

from typing import Any

import pytest

from notifyd.mail.reports import Kind
from notifyd.mail.service_reports import sendgrid

ID = "<0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0@voip.example>"
THEIRS = "<14c5d75ce93.dfd.64b469@ismtpd-555>"


@pytest.mark.parametrize(
    ("event", "kind", "status"),
    [
        ({"event": "bounce", "type": "bounce", "status": "5.1.1"}, Kind.FAILED, "5.1.1"),
        ({"event": "bounce", "reason": "550 5.1.10 no such user"}, Kind.FAILED, "5.1.10"),
        ({"event": "bounce", "type": "blocked", "status": "5.7.1"}, Kind.DELAYED, "5.7.1"),
        ({"event": "deferred", "response": "421 try again later"}, Kind.DELAYED, "4.0.0"),
        ({"event": "deferred", "response": "452 4.2.2 Mailbox full"}, Kind.DELAYED, "4.2.2"),
        ({"event": "dropped", "reason": "Bounced Address"}, Kind.FAILED, ""),
        ({"event": "dropped", "reason": "Invalid"}, Kind.FAILED, ""),
        ({"event": "dropped", "reason": "Spam Reporting Address"}, Kind.COMPLAINT, ""),
        ({"event": "spamreport"}, Kind.COMPLAINT, ""),
        ({"event": "dropped", "reason": "Unsubscribed Address"}, None, ""),
        ({"event": "dropped", "reason": "Spam Content (if spam checker app enabled)"}, None, ""),
        ({"event": "delivered", "response": "250 OK"}, None, ""),
        ({"event": "open"}, None, ""),
        ({}, None, ""),
    ],
)
def test_each_event_reads_as_what_it_is(
    event: dict[str, Any], kind: Kind | None, status: str
) -> None:
    report = sendgrid({"smtp-id": ID, **event})
    assert (report.kind, report.status) == (kind, status)
    if kind is not None:
        assert report.message_id == ID


def test_the_notice_is_named_by_our_argument_before_smtp_id() -> None:
    named = sendgrid({"event": "spamreport", "smtp-id": THEIRS, "notifyd-message-id": ID})
    assert named.message_id == ID
    assert named.feedback_type == "abuse"
    bare = sendgrid({"event": "bounce", "smtp-id": ID.strip("<>")})
    assert bare.message_id == ID
    # SendGrid's own id is read, and names no notice when it is looked up.
    assert sendgrid({"event": "bounce", "smtp-id": THEIRS}).message_id == THEIRS


def test_what_is_not_an_event_object_is_nothing_without_raising() -> None:
    for junk in (None, 3, "bounce", ["bounce"]):
        assert sendgrid(junk).kind is None
