"""Bounce and complaint reports read from the JSON webhooks of sending services, each made
into the same `Report` a DSN or ARF message makes (mail/reports.py): what happened, and
what names the notice it is about (the original message's Message-ID, or the bounce
address it was sent from when the service quotes it). Reads, decides nothing, checks no
signature (http/service_reports.py does, before a byte of this runs).

The payloads, as the services document them:
- Postmark, bounce and spam-complaint webhooks: https://postmarkapp.com/email-webhooks
  (`RecordType`, `Type` HardBounce / SoftBounce / SpamComplaint ..., `MessageID`,
  `Metadata`, `Details`, `Content` with the bounce's headers when "Include bounce content"
  is on). Postmark's `MessageID` is Postmark's own id, not our Message-ID header.
- Mailgun: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
  and .../events/event-types (`event-data.event` failed with `severity` permanent or
  temporary, complained; `event-data.message.headers.message-id` without brackets;
  `delivery-status`).
- SendGrid's Event Webhook:
  https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event (a JSON array
  of events, each read here on its own: `event` bounce with `type` bounce or blocked,
  dropped with its `reason`, deferred, spamreport; `status`; `smtp-id`, the Message-ID the
  message was submitted with; custom or unique arguments merged into the event's keys).
- Amazon SES through SNS: the SNS message's `Message` is SES's notification,
  https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html (`notificationType`,
  or `eventType` from a configuration set's event destination: Bounce with `bounceType`
  Permanent / Transient / Undetermined, Complaint, Delivery ...). SES overwrites the
  Message-ID header when it sends (`mail.messageId` is its own id); ours is in
  `mail.headers` and `mail.commonHeaders.messageId`, present when the notifications
  include the original headers.

Neighbours: intake/reports.py maps a Report to its notice and acts on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

from notifyd.mail.reports import Kind, Report

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ANGLED = re.compile(r"<[^<>\s]+@[^<>\s]+>")
_BARE = re.compile(r"[^<>\s@]+@[^<>\s@]+")
# A Message-ID header of a notice (storage/notices.py: <notice id@message domain>).
_NOTICE_ID_HEADER = re.compile(
    r"^message-id:[ \t]*(<[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}@[^<>\s]+>)",
    re.IGNORECASE | re.MULTILINE,
)

# Postmark's bounce types: those that say the address will never take mail, those that may
# pass tomorrow (counted only). Others (AutoResponder, Unsubscribe, ...) are not bounces.
_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked", "SMTPApiError"}
# The metadata key an X-PM-Metadata-notifyd-message-id header would give (Postmark's way of
# carrying a value of ours to its webhooks).
POSTMARK_METADATA_KEY = "notifyd-message-id"

# SendGrid drops (never sends) a message to an address on its suppression lists. Dropped
# for a bounce it recorded or an address it finds invalid: this address will take no mail
# through SendGrid, what a hard bounce says. For a spam report it recorded: the subscriber
# complained, read as a complaint (consent withdrawn is the cautious reading). The other
# reasons (unsubscribed at SendGrid, spam content, a bad SMTPAPI header) say nothing of the
# address's mailbox, and are not acted on.
_SENDGRID_DROPPED_HARD = {"Bounced Address", "Invalid"}
_SENDGRID_DROPPED_COMPLAINT = {"Spam Reporting Address"}
# A unique argument of that name (X-SMTPAPI: {"unique_args": {...}}) names the notice.
SENDGRID_ARGUMENT = POSTMARK_METADATA_KEY


def message_id(value: object) -> str | None:
    """A Message-ID as notices store it, `<id@domain>`, from one with or without brackets."""
    if not isinstance(value, str):
        return None
    found = _ANGLED.search(value)
    if found:
        return found.group(0)
    bare = _BARE.fullmatch(value.strip())
    return f"<{bare.group(0)}>" if bare else None


def postmark(body: Mapping[str, Any]) -> Report:
    """One Postmark bounce or spam-complaint webhook."""
    record = str(body.get("RecordType", ""))
    kind_name = str(body.get("Type", ""))
    details = " ".join(str(body.get("Details", "") or body.get("Description", "")).split())
    if record == "SpamComplaint" or kind_name in ("SpamComplaint", "SpamNotification"):
        kind: Kind | None = Kind.COMPLAINT
    elif record not in ("Bounce", ""):
        return Report(None, f"a postmark {record or 'unknown'} record, not a bounce")
    elif kind_name in _POSTMARK_HARD:
        kind = Kind.FAILED
    elif kind_name in _POSTMARK_SOFT:
        kind = Kind.DELAYED
    else:
        return Report(None, f"a postmark {kind_name or 'untyped'} bounce, not a delivery failure")
    metadata = body.get("Metadata")
    named = metadata.get(POSTMARK_METADATA_KEY) if isinstance(metadata, Mapping) else None
    found = _STATUS.search(details)
    return Report(
        kind,
        message_id=(
            message_id(named)
            or _content_message_id(body.get("Content"))
            or _angled_only(body.get("MessageID"))
        ),
        status=".".join(found.groups()) if found else "",
        diagnostic=f"postmark {kind_name}: {details}" if details else f"postmark {kind_name}",
        feedback_type="abuse" if kind is Kind.COMPLAINT else "",
    )


def mailgun(body: Mapping[str, Any], bounce_domains: Collection[str]) -> Report:
    """One Mailgun webhook (its `event-data`). `bounce_domains`: [smtp] bounce_domain and
    each stream's; the envelope sender is taken for a bounce address only in one of them
    (Mailgun's own bounce addresses are bounce+...@ too, and must not read as forged tokens
    of ours)."""
    data = body.get("event-data")
    if not isinstance(data, Mapping):
        return Report(None, "a mailgun webhook without event-data")
    event = str(data.get("event", ""))
    severity = str(data.get("severity", ""))
    if event == "failed":
        kind: Kind | None = Kind.FAILED if severity == "permanent" else Kind.DELAYED
    elif event == "complained":
        kind = Kind.COMPLAINT
    else:
        return Report(None, f"a mailgun {event or 'unnamed'} event, not a bounce or complaint")
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    status = data.get("delivery-status")
    words = ""
    if isinstance(status, Mapping):
        said = status.get("message", "") or status.get("description", "")
        words = " ".join(f"{status.get('code', '')} {said}".split())
    found = _STATUS.search(words)
    envelope = data.get("envelope")
    sender = envelope.get("sender") if isinstance(envelope, Mapping) else None
    return Report(
        kind,
        quoted_bounce_address=_in_domain(sender, bounce_domains),
        message_id=message_id(headers.get("message-id")) if isinstance(headers, Mapping) else None,
        status=".".join(found.groups()) if found else ("4.0.0" if kind is Kind.DELAYED else ""),
        diagnostic=f"mailgun {severity or event}: {words}".strip(),
        feedback_type="abuse" if kind is Kind.COMPLAINT else "",
    )


def sendgrid(event: object) -> Report:
    """One event of a SendGrid Event Webhook post. The notice is named by a
    `notifyd-message-id` argument if one was given (an X-SMTPAPI unique_args), else by
    `smtp-id`, the Message-ID SendGrid was handed (its own id when there was none, which
    names no notice)."""
    if not isinstance(event, Mapping):
        return Report(None, "a sendgrid event that is not an object")
    name = str(event.get("event", ""))
    said = " ".join(str(event.get("reason", "") or event.get("response", "")).split())
    kind = _sendgrid_kind(name, str(event.get("type", "")), said)
    if kind is None:
        return Report(None, f"a sendgrid {name or 'unnamed'} event, not a bounce or complaint")
    found = _STATUS.search(f"{event.get('status', '')} {said}")
    return Report(
        kind,
        message_id=message_id(event.get(SENDGRID_ARGUMENT)) or message_id(event.get("smtp-id")),
        status=".".join(found.groups()) if found else ("4.0.0" if kind is Kind.DELAYED else ""),
        diagnostic=f"sendgrid {name}: {said}".strip(),
        feedback_type="abuse" if kind is Kind.COMPLAINT else "",
    )


def _sendgrid_kind(name: str, bounce_type: str, reason: str) -> Kind | None:
    if name == "bounce":
        # "blocked": the receiver refused for now (a reputation or content block), not a
        # mailbox that does not exist.
        return Kind.DELAYED if bounce_type == "blocked" else Kind.FAILED
    if name == "deferred":
        return Kind.DELAYED
    if name == "spamreport":
        return Kind.COMPLAINT
    if name == "dropped" and reason in _SENDGRID_DROPPED_HARD:
        return Kind.FAILED
    if name == "dropped" and reason in _SENDGRID_DROPPED_COMPLAINT:
        return Kind.COMPLAINT
    return None


def ses(message: str, bounce_domains: Collection[str]) -> Report:
    """One SES notification, the `Message` of an SNS notification. One notification may
    name several recipients of one message; the message is one notice, and the first
    recipient's status and words are shown on it. `bounce_domains` as for mailgun()."""
    try:
        body = json.loads(message)
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        return Report(None, "an SNS message that is no SES notification")
    event = str(body.get("notificationType") or body.get("eventType") or "")
    if event == "Bounce":
        details = body.get("bounce")
        recipients_key = "bouncedRecipients"
    elif event == "Complaint":
        details = body.get("complaint")
        recipients_key = "complainedRecipients"
    else:
        return Report(None, f"an SES {event or 'untyped'} notification, not a bounce or complaint")
    details = details if isinstance(details, Mapping) else {}
    recipients = details.get(recipients_key)
    first = recipients[0] if isinstance(recipients, list) and recipients else {}
    first = first if isinstance(first, Mapping) else {}
    mail = body.get("mail")
    mail = mail if isinstance(mail, Mapping) else {}
    named, sender = _ses_message_id(mail), _in_domain(mail.get("source"), bounce_domains)
    if event == "Complaint":
        return Report(
            Kind.COMPLAINT,
            quoted_bounce_address=sender,
            message_id=named,
            diagnostic="ses complaint",
            feedback_type=str(details.get("complaintFeedbackType", "") or "abuse"),
        )
    bounce_type = str(details.get("bounceType", ""))
    words = " ".join(str(first.get("diagnosticCode", "")).split())
    found = _STATUS.search(f"{first.get('status', '')} {words}")
    kind = Kind.FAILED if bounce_type == "Permanent" else Kind.DELAYED
    return Report(
        kind,
        quoted_bounce_address=sender,
        message_id=named,
        status=".".join(found.groups()) if found else ("4.0.0" if kind is Kind.DELAYED else ""),
        diagnostic=f"ses {bounce_type} {details.get('bounceSubType', '')}: {words}".strip(),
    )


def _ses_message_id(mail: Mapping[str, Any]) -> str | None:
    """Our Message-ID as SES quotes the original headers: the header list first, then
    commonHeaders; never `mail.messageId` (SES's own)."""
    headers = mail.get("headers")
    for header in headers if isinstance(headers, list) else ():
        if isinstance(header, Mapping) and str(header.get("name", "")).lower() == "message-id":
            return message_id(header.get("value"))
    common = mail.get("commonHeaders")
    return message_id(common.get("messageId")) if isinstance(common, Mapping) else None


def _in_domain(address: object, domains: Collection[str]) -> str | None:
    if not isinstance(address, str):
        return None
    domain = address.strip().lower().rpartition("@")[2]
    return address if domain in {d.lower() for d in domains if d} else None


def _angled_only(value: object) -> str | None:
    """A Message-ID only in its `<id@domain>` form: a bare id (Postmark's own) is not ours."""
    found = _ANGLED.search(value) if isinstance(value, str) else None
    return found.group(0) if found else None


def _content_message_id(content: object) -> str | None:
    """The Message-ID of ours among the headers the bounce content quotes (the bounce's own
    Message-ID comes first there, and is no notice's)."""
    found = _NOTICE_ID_HEADER.search(content) if isinstance(content, str) else None
    return found.group(1) if found else None
