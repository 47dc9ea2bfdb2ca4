"""A claimed notice of each kind, ready to render, for the tests of what a rendered email
says; and where a rendered line leaves a bidirectional embedding open."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from notifyd.storage.notices import ClaimedNotice

SENDER = "Operator <notices@voip.example>"


NOW = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)


NOTICE_ID = UUID("3f1c2a9e-8d4b-4c7a-9e21-5b6f0d8a7c10")


MESSAGE_ID = f"<{NOTICE_ID}@voip.example>"


MISSED_CALL: dict[str, Any] = {
    "account_id": "acc-1001",
    "call_id": "1700000000.42",
    "caller_number": "+40721555123",
    "caller_name": "Ion Ionescu",
    "called_number": "+40215550100",
    "extension": "101",
    "started_at": "2026-11-22T10:00:00Z",
    "ring_seconds": 25,
    "to_voicemail": False,
}


WELCOME: dict[str, Any] = {
    "account_id": "acc-1001",
    "email": "ana@example.com",
    "username": "ana.popescu",
    "name": "Ana Popescu",
    "language": "ro",
    "timezone": "Europe/Bucharest",
}


def notice(
    kind: str,
    language: str,
    timezone: str = "Europe/Bucharest",
    **data: Any,
) -> ClaimedNotice:
    base = MISSED_CALL if kind == "call.missed" else WELCOME
    return ClaimedNotice(
        id=NOTICE_ID,
        event_id=UUID("9a0b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"),
        account_id="acc-1001",
        kind=kind,
        category="calls" if kind == "call.missed" else "service",
        recipient="ana@example.com",
        language=language,
        timezone=timezone,
        attempts=1,
        created_at=NOW,
        lifetime_from=NOW,
        message_id=MESSAGE_ID,
        context={},
        event_type=kind,
        occurred_at=NOW,
        data={**base, **data},
        subscriber_name="Ana Popescu",
        subscriber_username="ana.popescu",
    )


PDI = "\u2069"  # closes an isolate


def bidi_open_at_line_ends(text: str) -> list[str]:
    """The lines at whose end an embedding, override or isolate is still open (UAX #9's
    stack, simplified): on such a line, the template's text after the value is reordered."""
    unclosed = []
    stack: list[str] = []
    line = ""
    for char in text + "\n":
        if char == "\n":
            if stack:
                unclosed.append(line)
            stack, line = [], ""
            continue
        line += char
        if char in "\u202a\u202b\u202d\u202e":
            stack.append("embedding")
        elif char == "\u202c" and stack and stack[-1] == "embedding":
            stack.pop()
        elif char in "\u2066\u2067\u2068":
            stack.append("isolate")
        elif char == PDI and "isolate" in stack:
            while stack.pop() != "isolate":
                pass
    return unclosed
