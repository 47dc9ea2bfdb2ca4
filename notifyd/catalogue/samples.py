"""Sample events of the catalogue, for `notifyd simulate`, `notifyd preview` and tests."""

from __future__ import annotations

import base64
import io
import uuid
import wave
from datetime import UTC, datetime, timedelta
from typing import Any

# Which configured source usually sends each type (SPEC §4, column "from").
USUAL_SOURCE = {
    "account.created": "billing",
    "account.updated": "billing",
    "account.closed": "billing",
    "call.missed": "pbx",
    "voicemail.received": "pbx",
    "fax.received": "pbx",
    "fax.sent": "pbx",
    "fax.failed": "pbx",
    "account.password_changed": "pbx",
    "account.password_reset_requested": "pbx",
    "account.pin_created": "pbx",
    "account.ip_allowlist_changed": "pbx",
    "usage.daily_limit_exceeded": "pbx",
    "billing.balance_updated": "billing",
    "billing.credit_added": "billing",
    "billing.payment_confirmed": "billing",
}


def sample_wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A short 8 kHz mono 16-bit WAV, the format Asterisk's voicemail writes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x01" * int(seconds * rate))
    return buffer.getvalue()


def sample_pdf() -> bytes:
    """A one-page PDF, small but well-formed (with a correct cross-reference table)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _inline(filename: str, content_type: str, data: bytes) -> dict[str, str]:
    return {
        "filename": filename,
        "content_type": content_type,
        "data_base64": base64.b64encode(data).decode(),
    }


def sample_data(
    event_type: str, account_id: str, now: datetime, **overrides: Any
) -> dict[str, Any]:
    # Long on purpose: one sample per event type, as a table reads best.
    earlier = (now - timedelta(seconds=30)).isoformat()
    # Unique per sample: two samples in the same second must not be taken for one call.
    call_id = f"{int(now.timestamp())}.{uuid.uuid4().hex[:6]}"
    samples: dict[str, dict[str, Any]] = {
        "account.created": {
            "email": "subscriber@example.com",
            "name": "Ana Popescu",
            "username": "ana.popescu",
            "language": "ro",
            "timezone": "Europe/Bucharest",
        },
        "account.updated": {"name": "Ana Maria Popescu"},
        "account.closed": {"closed_at": earlier},
        "call.missed": {
            "call_id": call_id,
            "caller_number": "+40721555123",
            "caller_name": "Ion Ionescu",
            "called_number": "+40215550100",
            "extension": "101",
            "started_at": earlier,
            "ring_seconds": 25,
            "to_voicemail": False,
        },
        "voicemail.received": {
            "call_id": call_id,
            "mailbox": "101",
            "caller_number": "+40721555123",
            "caller_name": "Ion Ionescu",
            "duration_seconds": 14,
            "received_at": earlier,
            "audio": _inline("msg0001.wav", "audio/wav", sample_wav()),
            "transcript": "Bună ziua, vă rog să mă sunați înapoi.",
        },
        "fax.received": {
            "remote_number": "+40215550199",
            "pages": 1,
            "received_at": earlier,
            "document": _inline("fax-20261122.pdf", "application/pdf", sample_pdf()),
        },
        "fax.sent": {"remote_number": "+40215550199", "pages": 3, "sent_at": earlier},
        "fax.failed": {
            "remote_number": "+40215550199",
            "pages": 3,
            "sent_at": earlier,
            "reason": "busy",
        },
        "account.password_changed": {
            "changed_at": earlier,
            "source_ip": "198.51.100.23",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
        },
        "account.password_reset_requested": {
            "reset_url": "https://portal.voip.example/reset/3f9c1d2e",
            "expires_at": (now + timedelta(hours=1)).isoformat(),
            "source_ip": "198.51.100.23",
        },
        "account.pin_created": {"created_at": earlier, "source_ip": "198.51.100.23"},
        "account.ip_allowlist_changed": {
            "previous": ["203.0.113.10"],
            "current": ["203.0.113.10", "198.51.100.0/24"],
            "changed_by": "admin",
            "source_ip": "198.51.100.23",
        },
        "usage.daily_limit_exceeded": {
            "limit": "50.00",
            "spent": "52.35",
            "currency": "RON",
            "date": now.date().isoformat(),
        },
        "billing.balance_updated": {"balance": "3.20", "currency": "RON"},
        "billing.credit_added": {
            "amount": "50.00",
            "currency": "RON",
            "new_balance": "53.20",
            "method": "card",
        },
        "billing.payment_confirmed": {
            "payment_id": "pay_8842",
            "amount": "119.00",
            "currency": "RON",
            "invoice_number": "VOIP-2026-0042",
            "paid_at": earlier,
        },
    }
    if event_type not in samples:
        raise KeyError(f"no sample for {event_type!r}; known: {', '.join(sorted(samples))}")
    return {"account_id": account_id, **samples[event_type], **overrides}


def sample_event(
    event_type: str, account_id: str = "acc-1001", now: datetime | None = None, **overrides: Any
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "type": event_type,
        "timestamp": now.isoformat(),
        "data": sample_data(event_type, account_id, now, **overrides),
    }


# Notice kinds: one template pair per kind and language. Most kinds are the event type;
# some events give a notice of another kind (a balance crossing a threshold, a changed
# email address).
NOTICE_KINDS = (
    "account.created",
    "account.email_changed",
    "account.closed",
    "call.missed",
    "voicemail.received",
    "fax.received",
    "fax.sent",
    "fax.failed",
    "account.password_changed",
    "account.password_reset_requested",
    "account.pin_created",
    "account.ip_allowlist_changed",
    "usage.daily_limit_exceeded",
    "credit.low",
    "credit.critical",
    "billing.credit_added",
    "billing.payment_confirmed",
    "notice.policy_changed",
    "notice.service",
    "marketing.offer",
    "digest",
    "account.preferences_link",
)
# Kinds no event gives: a digest tells its notices through `extra`; a fresh preference link
# (asked for on a subscriber's page) has only the link every email carries.
KINDS_WITHOUT_DATA = frozenset({"digest", "account.preferences_link"})

# Broadcasts are not webhooks: their content is what the admin wrote, per language.
SAMPLE_BROADCASTS = {
    "notice.policy_changed": {
        "subject": {
            "ro": "Modificarea politicii de confidențialitate",
            "en": "Changes to our privacy policy",
        },
        "body": {
            "ro": "Am actualizat politica de confidențialitate.\n\nModificările intră în "
            "vigoare la 1 decembrie 2026.",
            "en": "We have updated our privacy policy.\n\nThe changes take effect on "
            "1 December 2026.",
        },
    },
    "marketing.offer": {
        "subject": {
            "ro": "Ofertă: minute nelimitate în rețea, 25 RON pe lună",
            "en": "Offer: unlimited on-net minutes, RON 25 a month",
        },
        "body": {
            "ro": "Din decembrie, abonamentul Nelimitat Rețea costă 25 RON pe lună.",
            "en": "From December, the Unlimited On-net plan costs RON 25 a month.",
        },
    },
    "notice.service": {
        "subject": {
            "ro": "Lucrări de mentenanță în noaptea de 28 noiembrie",
            "en": "Maintenance on the night of 28 November",
        },
        "body": {
            "ro": "Între 02:00 și 04:00 apelurile pot fi întrerupte scurt.",
            "en": "Between 02:00 and 04:00 calls may be briefly interrupted.",
        },
    },
}

KIND_EVENT = {
    "account.email_changed": "account.updated",
    "credit.low": "billing.balance_updated",
    "credit.critical": "billing.balance_updated",
}


def sample_extra(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The `extra` a notice of this kind carries (see docs/templates.md)."""
    if kind == "account.email_changed":
        return {
            "old_email": "ana.old@example.com",
            "new_email": "ana.new@example.com",
            "recipient_role": "old",
        }
    if kind == "voicemail.received":
        return {
            "missed_call": {
                "started_at": data["received_at"],
                "called_number": "+40215550100",
                "extension": "101",
                "ring_seconds": 20,
            },
            "attachment": {"filename": "msg0001.wav", "size_bytes": 4044, "status": "attached"},
            "portal_url": "https://portal.voip.example/voicemail",
        }
    if kind == "fax.received":
        return {
            "attachment": {
                "filename": "fax-20261122.pdf",
                "size_bytes": 187_000,
                "status": "attached",
            },
            "portal_url": "https://portal.voip.example/fax",
        }
    if kind == "account.ip_allowlist_changed":
        return {"added": ["198.51.100.0/24"], "removed": []}
    if kind == "marketing.offer":
        return {"unsubscribe_url": "https://notices.voip.example/v1/unsubscribe/sample-token"}
    if kind == "credit.low":
        return {"threshold": "5.00", "days_left": 3}
    if kind == "credit.critical":
        return {"threshold": "1.00", "days_left": None}
    if kind == "digest":
        return {
            "period": "hourly",
            "category": "calls",
            "items": [
                "22 noiembrie 2026, 10:05 (Europe/Bucharest) – apel nepreluat de la "
                "+40 721 555 123",
                "22 noiembrie 2026, 10:20 (Europe/Bucharest) – apel nepreluat de la "
                "+40 721 555 123",
                "22 noiembrie 2026, 10:41 (Europe/Bucharest) – apel nepreluat de la "
                "+40 745 000 111",
            ],
            "totals": {
                "count": 3,
                "kinds": [{"kind": "call.missed", "count": 3}],
                "callers": [{"number": "+40721555123", "count": 2}],
            },
            "waiting": 4,
            "unsubscribe_url": "https://notices.voip.example/v1/unsubscribe/sample-token",
        }
    return {}
