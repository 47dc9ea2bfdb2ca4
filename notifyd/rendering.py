"""Notice -> EmailMessage: Jinja2 templates per event type and language, no other I/O.

A template `<type>.<lang>.txt` defines `{% set subject %}` and the plain-text body;
`<type>.<lang>.html` is the HTML part and extends `layout.html`. Header values are set only
through the `email` package, which refuses line breaks, so event data cannot inject headers.
"""

from __future__ import annotations

import email.policy
import email.utils
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_datetime

from notifyd.storage.notices import ClaimedNotice

PACKAGE_TEMPLATES = jinja2.PackageLoader("notifyd", "templates")


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self, sender: str) -> None:
        self.sender = sender
        self._text = jinja2.Environment(
            loader=PACKAGE_TEMPLATES,
            autoescape=False,  # noqa: S701  (plain-text part: nothing is HTML here)
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._html = jinja2.Environment(
            loader=PACKAGE_TEMPLATES,
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        for env in (self._text, self._html):
            env.filters["local_datetime"] = _local_datetime

    def render(self, notice: ClaimedNotice) -> RenderedNotice:
        context = _context(notice)
        name = f"{notice.kind}.{notice.language}"
        module = self._text.get_template(f"{name}.txt").make_module(context)
        subject = " ".join(str(getattr(module, "subject", "")).split())
        text = str(module).strip() + "\n"
        html = self._html.get_template(f"{name}.html").render(context, subject=subject)
        return RenderedNotice(subject=subject, text=text, html=html)

    def message(self, notice: ClaimedNotice, now: datetime) -> EmailMessage:
        rendered = self.render(notice)
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = self.sender
        message["To"] = notice.recipient
        message["Subject"] = rendered.subject
        message["Date"] = email.utils.format_datetime(now)
        message["Message-ID"] = notice.message_id
        # RFC 3834: tells auto-responders (vacation replies) not to answer.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        # After the body: set_content() drops every Content-* header set before it.
        message["Content-Language"] = notice.language
        return message


def _local_datetime(value: str | datetime, zone: str, language: str) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return format_datetime(moment, format="long", tzinfo=ZoneInfo(zone), locale=language)


def _context(notice: ClaimedNotice) -> dict[str, Any]:
    return {
        "notice": notice,
        "data": notice.data,
        "zone": notice.timezone,
        "lang": notice.language,
        "subscriber_name": notice.subscriber_name,
        "username": notice.subscriber_username,
    }
