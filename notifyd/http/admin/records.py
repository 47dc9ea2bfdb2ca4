"""Stored events and notices as the admin reads them: the notices and events resources
both show them (a subscriber's notices beside the events that queued none; an event with
its notices)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from notifyd.catalogue.events import Category
from notifyd.http.validation import Reply, Timestamp
from notifyd.storage.notices import NoticeState


class Notice(Reply):
    """A notice, with why it was queued and when ("why did I (not) get this email?")."""

    id: UUID
    event_id: UUID | None = Field(description="null for a digest")
    kind: str
    category: Category
    recipient: str
    state: NoticeState
    attempts: int
    reasons: list[str] = Field(description="Why it was queued, and why then")
    due_at: Timestamp = Field(description="When it was (or is) due; never after sent_at")
    sent_at: Timestamp | None
    created_at: Timestamp
    last_error: str | None = Field(
        description="The last delivery error; for a notice cancelled or held (restricted), "
        "why: the subscriber's choice, the address, the restriction"
    )
    smtp_reply: str | None


class Decision(Reply):
    """What was decided for an event: it queued notices (each says why), queued nothing
    (`code` and `reason` say why), or was routed before decisions were stored."""

    outcome: Literal["queued", "nothing_queued", "not_recorded"]
    code: str
    reason: str | None


class _Received(Reply):
    event_id: UUID
    source: str
    type: str
    account_id: str
    occurred_at: Timestamp
    received_at: Timestamp


class Event(_Received):
    """An event, with what was decided for it."""

    notices: int = Field(description="How many notices it queued")
    decision: Decision


class EventWithNotices(_Received):
    """An event, with what was decided for it and the notices it queued."""

    notices: list[Notice]
    decision: Decision
