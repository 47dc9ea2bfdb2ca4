"""A notice of each kind with sample data, rendered without a database: `notifyd preview`,
the template tests and the benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from notifyd.catalogue.events import CATALOGUE, stored_fields
from notifyd.catalogue.samples import (
    KIND_EVENT,
    KINDS_WITHOUT_DATA,
    SAMPLE_BROADCASTS,
    sample_data,
    sample_extra,
)
from notifyd.mail.rendering import NoticeView


def sample_view(kind: str, language: str, now: datetime | None = None) -> NoticeView:
    """A notice of `kind` with sample data, ready to render without a database."""
    now = now or datetime.now(UTC)
    event_type = KIND_EVENT.get(kind, kind)
    if kind in SAMPLE_BROADCASTS:
        data: dict[str, Any] = SAMPLE_BROADCASTS[kind]
    elif kind in KINDS_WITHOUT_DATA:
        data = {}
    else:
        fields = sample_data(event_type, "acc-1001", now)
        data = stored_fields(CATALOGUE[event_type].model_validate(fields))
    if kind == "account.email_changed":
        data["email"] = "ana.new@example.com"
    if kind == "credit.critical":
        data["balance"] = "0.40"
    return NoticeView(
        kind=kind,
        language=language,
        data=data,
        context={
            **sample_extra(kind, data),
            "preferences_url": "https://notices.voip.example/v1/preferences/sample-token",
        },
        message_id=f"<preview-{kind}@voip.example>",
    )
