"""A notice of each kind with sample data, rendered without a database: `notifyd preview`,
the template tests and the benchmarks; and `renderer_for`, which tries every template
with them before the daemon or `check-config` takes a config."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from notifyd.catalogue.events import CATALOGUE, stored_fields
from notifyd.catalogue.locale import LANGUAGES
from notifyd.catalogue.samples import (
    KIND_EVENT,
    KINDS_WITHOUT_DATA,
    NOTICE_KINDS,
    SAMPLE_BROADCASTS,
    sample_data,
    sample_extra,
)
from notifyd.catalogue.stoppable import stoppable_by_link
from notifyd.mail.rendering import NoticeView, Renderer
from notifyd.settings import ConfigError, Settings


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
    context = {
        **sample_extra(kind, data),
        "preferences_url": "https://notices.voip.example/v1/preferences/sample-token",
    }
    category = CATALOGUE[event_type].category if event_type in CATALOGUE else None
    if category is not None and stoppable_by_link(category):
        # As delivery/send.py gives it: the notice's one-click link turning its category off.
        context["unsubscribe_url"] = "https://notices.voip.example/v1/unsubscribe/sample-token"
        context["unsubscribe_category"] = category.value
    return NoticeView(
        kind=kind,
        language=language,
        data=data,
        context=context,
        message_id=f"<preview-{kind}@voip.example>",
    )


def renderer_for(settings: Settings) -> Renderer:
    """The renderer for these settings, every template tried with sample data first: a broken
    override is a config error at start or reload, never a failure at send time."""
    renderer = Renderer(
        settings.smtp.sender,
        reply_to=settings.smtp.reply_to,
        sender_names=settings.smtp.sender_names,
        override_folder=settings.templates_folder,
        branding=settings.branding,
        company=settings.company,
    )
    problems = renderer.check(
        [sample_view(kind, language) for kind in NOTICE_KINDS for language in LANGUAGES]
    )
    if problems:
        raise ConfigError(settings.path, [("[templates] folder", p) for p in problems])
    return renderer
