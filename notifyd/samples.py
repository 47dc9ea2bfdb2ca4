"""Sample events of the catalogue, for `notifyd simulate`, previews and tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# Which configured source usually sends each type (SPEC §4, column "from").
USUAL_SOURCE = {"account.created": "billing", "call.missed": "pbx"}


def sample_data(
    event_type: str, account_id: str, now: datetime, **overrides: Any
) -> dict[str, Any]:
    samples: dict[str, dict[str, Any]] = {
        "account.created": {
            "email": "subscriber@example.com",
            "name": "Ana Popescu",
            "username": "ana.popescu",
            "language": "ro",
            "timezone": "Europe/Bucharest",
        },
        "call.missed": {
            "call_id": f"1700000000.{int(now.timestamp()) % 100000}",
            "caller_number": "+40721555123",
            "caller_name": "Ion Ionescu",
            "called_number": "+40215550100",
            "extension": "101",
            "started_at": (now - timedelta(seconds=30)).isoformat(),
            "ring_seconds": 25,
            "to_voicemail": False,
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
