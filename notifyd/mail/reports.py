"""Bounce and complaint reports read from the raw messages a relay sends back: delivery
status notifications (RFC 3464, multipart/report; report-type=delivery-status) and abuse
feedback (ARF, RFC 5965, report-type=feedback-report), parsed with the standard `email`
package. Each becomes one `Report`: what happened, and what names the notice it is about
(the bounce address it came to, the original message's Message-ID). Reads, decides nothing.

Neighbours: intake/reports.py maps a Report to its notice and acts on it; the sending
services' JSON webhooks, when they come, make the same Report from their own bodies.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from enum import StrEnum

# The header contrib/postfix/notifyd-bounce puts first: the envelope recipient Postfix
# gave it, the bounce address (VERP) the report came back to.
ENVELOPE_HEADER = "Notifyd-Envelope-Recipient"

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


class Kind(StrEnum):
    # A permanent failure (Action: failed, status 5.x.x): a hard bounce.
    FAILED = "failed"
    # A transient one (Action: delayed, or failed with 4.x.x): a soft bounce.
    DELAYED = "delayed"
    # A complaint (ARF): the recipient marked the message as spam.
    COMPLAINT = "complaint"


@dataclass(frozen=True)
class Report:
    """One report about one message we sent. `kind` None: not a report notifyd acts on
    (`why` says what it is instead)."""

    kind: Kind | None
    why: str = ""
    # The bounce address the report came to (the envelope recipient), if known.
    bounce_address: str | None = None
    # The original message's bounce address as the report quotes it (ARF
    # Original-Mail-From, the Return-Path of the enclosed message).
    quoted_bounce_address: str | None = None
    # The original message's Message-ID, with its angle brackets.
    message_id: str | None = None
    # RFC 3463 status ("5.1.1") and the remote server's words (Diagnostic-Code).
    status: str = ""
    diagnostic: str = ""
    # ARF Feedback-Type ("abuse", ...).
    feedback_type: str = ""

    @property
    def reply(self) -> str:
        """What the notice shows as its relay's reply: the status and the remote's words."""
        words = self.diagnostic.partition(";")[2].strip() if ";" in self.diagnostic else ""
        text = words or self.diagnostic or self.why
        return f"bounce report {self.status}: {text}"[:1000] if self.status else text[:1000]


def parse(raw: bytes) -> Report:
    """The report a raw message is; never raises on a malformed one."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    envelope = _header(message, ENVELOPE_HEADER)
    if message.get_content_type() != "multipart/report":
        return Report(None, "not a report (multipart/report)", bounce_address=envelope)
    report_type = str(message.get_param("report-type", "")).lower()
    parts: list[Message] = [p for p in message.iter_parts() if isinstance(p, Message)]
    original = _original(parts)
    if report_type == "delivery-status":
        return _dsn(parts, envelope, original)
    if report_type == "feedback-report":
        return _arf(parts, envelope, original)
    return Report(None, f"a report of another type ({report_type or 'none'})", envelope)


def _dsn(parts: Sequence[Message], envelope: str | None, original: Message | None) -> Report:
    status_part = next(
        (p for p in parts if p.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        return Report(None, "a delivery report without its delivery-status part", envelope)
    blocks = [b for b in status_part.get_payload() if isinstance(b, Message)]
    # The first block is about the message, the others one recipient each; ours have one.
    for block in blocks[1:] or blocks:
        action = str(block.get("Action", "")).strip().lower()
        found = _STATUS.search(str(block.get("Status", "")))
        status = ".".join(found.groups()) if found else ""
        diagnostic = _one_line(str(block.get("Diagnostic-Code", "")))
        kind = _dsn_kind(action, status)
        if kind is not None:
            return Report(
                kind,
                bounce_address=envelope,
                quoted_bounce_address=_return_path(original),
                message_id=_original_id(original),
                status=status,
                diagnostic=diagnostic,
            )
    return Report(None, "a delivery report of no failure or delay (delivered, relayed)", envelope)


def _dsn_kind(action: str, status: str) -> Kind | None:
    if action == "failed":
        # A failure with a 4.x.x status is one the reporting server gave up on early:
        # the address may work tomorrow. Counted, not acted on.
        return Kind.DELAYED if status.startswith("4") else Kind.FAILED
    if action == "delayed":
        return Kind.DELAYED
    return None


def _arf(parts: Sequence[Message], envelope: str | None, original: Message | None) -> Report:
    feedback = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if feedback is None:
        return Report(None, "a feedback report without its feedback-report part", envelope)
    fields = _fields(feedback)
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    if feedback_type not in ("abuse", "fraud", "virus", "other", ""):
        # not-spam, auth-failure (DMARC), opt-out (RFC 6650 is abuse for unsubscribes)
        return Report(None, f"a feedback report of type {feedback_type}", envelope)
    quoted = _address(str(fields.get("Original-Mail-From", ""))) or _return_path(original)
    return Report(
        Kind.COMPLAINT,
        bounce_address=envelope,
        quoted_bounce_address=quoted,
        message_id=_original_id(original),
        feedback_type=feedback_type or "abuse",
    )


def _fields(part: Message) -> Message:
    """The fields of a message/feedback-report part: the email package reads a message/*
    part's content as a message, whose headers they are (a text/plain part, as some
    providers send, is parsed here the same way)."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = part.get_payload(decode=True)
    return BytesHeaderParser(policy=email.policy.default).parsebytes(
        text if isinstance(text, bytes) else b""
    )


def _original(parts: Sequence[Message]) -> Message | None:
    """The original message or its headers, as the report encloses them."""
    for part in parts[1:]:
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if content_type in ("text/rfc822-headers", "message/rfc822-headers"):
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return BytesHeaderParser(policy=email.policy.default).parsebytes(text)
    return None


def _original_id(original: Message | None) -> str | None:
    found = _MESSAGE_ID.search(_header(original, "Message-ID") or "") if original else None
    return found.group(0) if found else None


def _return_path(original: Message | None) -> str | None:
    return _address(_header(original, "Return-Path") or "") if original else None


def _header(message: Message | None, name: str) -> str | None:
    """A header's first value as text, or None; a malformed one is read as raw text."""
    if message is None:
        return None
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):
        return None
    return str(value).strip() if value is not None else None


def _address(value: str) -> str | None:
    """The address of `<a@b>`, `a@b` or `rfc822; a@b`."""
    text = value.partition(";")[2] if ";" in value else value
    text = text.strip().strip("<>").strip()
    return text if "@" in text else None


def _one_line(value: str) -> str:
    return " ".join(value.split())
