"""Sample events of the catalogue, for `notifyd simulate`, `notifyd preview` and tests."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from notifyd.catalogue.attachments import prepare
from notifyd.catalogue.sample_files import sample_fax_tiff, sample_pdf, sample_wav

__all__ = [
    "KINDS_WITHOUT_DATA",
    "KIND_EVENT",
    "NOTICE_KINDS",
    "SAMPLE_BROADCASTS",
    "USUAL_SOURCE",
    "sample_data",
    "sample_event",
    "sample_extra",
    "sample_pdf",
    "sample_wav",
]

# The sample subscriber's zone: the dates in the samples' file names are its days, as the
# email shows the event's time in it.
SAMPLE_ZONE = ZoneInfo("Europe/Bucharest")
VOICEMAIL_SECONDS = 14
FAX_FROM = "+40215550199"

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
            "duration_seconds": VOICEMAIL_SECONDS,
            "received_at": earlier,
            "transcript": "Bună ziua, vă rog să mă sunați înapoi.",
        },
        "fax.received": {"remote_number": FAX_FROM, "pages": 1, "received_at": earlier},
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
            "date": now.astimezone(SAMPLE_ZONE).date().isoformat(),
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
    data = {"account_id": account_id, **samples[event_type], **overrides}
    return {**_files(event_type, data), **data}


def _files(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The sample's files, made to agree with it (unless the caller gave its own): the audio
    lasts duration_seconds, the fax is dated the day it was received. A value a test
    overrides with something invalid (the event is to be refused) leaves the default's."""
    if event_type == "voicemail.received":
        seconds = data["duration_seconds"]
        if not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
            seconds = VOICEMAIL_SECONDS
        return {"audio": _inline("msg0001.wav", "audio/wav", voicemail_audio(seconds))}
    if event_type == "fax.received":
        try:
            day = local_day(data["received_at"])
        except (TypeError, ValueError):
            day = datetime.now(UTC).astimezone(SAMPLE_ZONE).date()
        tiff = sample_fax_tiff(day, str(data["remote_number"]))
        return {"document": _inline(fax_file_name(day), "image/tiff", tiff)}
    return {}


def voicemail_audio(seconds: float) -> bytes:
    """8-bit: a 14-second sample is 112 KB, half of what Asterisk's 16-bit would be."""
    return sample_wav(float(seconds), width=1)


def local_day(moment: str | datetime) -> date:
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return when.astimezone(SAMPLE_ZONE).date()


def fax_file_name(day: date) -> str:
    return f"fax-{day:%Y%m%d}.tif"


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
    "billing.statement",
)
# Kinds no event gives: a digest tells its notices through `extra`; a fresh preference link
# (asked for on a subscriber's page) has only the link every email carries; the monthly
# credit statement is made by its job from the month's billing events.
KINDS_WITHOUT_DATA = frozenset({"digest", "account.preferences_link", "billing.statement"})

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


# A month that adds up: 12.40 + 50.00 topped up - 38.65 spent = 23.75, the spending (about
# 1.29 a day) leaving 18 days; the payment settles an invoice, not the credit.
SAMPLE_STATEMENT: dict[str, Any] = {
    "period": "2026-10-01",
    "period_end": "2026-10-31",
    "currencies": [
        {
            "currency": "RON",
            "opening": "12.40",
            "closing": "23.75",
            "top_ups": 2,
            "top_up_sum": "50.00",
            "payments": 1,
            "payment_sum": "119.00",
            "low_crossings": 1,
            "critical_crossings": 0,
            "limit_events": 0,
            "days_left": 18,
        }
    ],
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
            "attachment": {
                "filename": "msg0001.wav",
                "size_bytes": len(voicemail_audio(data["duration_seconds"])),
                "status": "attached",
            },
            "portal_url": "https://portal.voip.example/voicemail",
        }
    if kind == "fax.received":
        # As the email carries it: the TIFF made a PDF (attachments.prepare).
        day = local_day(data["received_at"])
        tiff = sample_fax_tiff(day, data["remote_number"])
        document = prepare("document", fax_file_name(day), "image/tiff", tiff)
        return {
            "attachment": {
                "filename": document.filename,
                "size_bytes": len(document.content),
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
    if kind == "billing.statement":
        return dict(SAMPLE_STATEMENT)
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
