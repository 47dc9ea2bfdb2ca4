"""Helpers shared by the end-to-end catalogue tests (test_catalogue, test_calls,
test_attachments_e2e, test_low_credit): an SMTP sink that keeps the raw bytes it received,
strict checks every notice email must pass, and signed posting of sample events."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from notifyd.catalogue.samples import USUAL_SOURCE
from notifyd.settings import Settings
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    Running,
    SmtpSink,
    base_config,
    load_config,
    smtp_server,
)

SECRETS = {"pbx": PBX_SECRET, "billing": BILLING_SECRET}
# Quick retries, and a short poll: every poll also probes the LISTEN connection, which is
# what test_stop_finishes_when_it_lands_as_the_listener_probe_completes needs often.
FAST_DELIVERY = {"poll_seconds": 0.2, "retry_initial_seconds": 0.2, "retry_max_seconds": 0.5}
NO_QUIET_HOURS = {"quiet_hours": ""}
MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
# Elements that have no end tag in HTML.
VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


@dataclass
class RawSink(SmtpSink):
    """The conftest sink, also keeping each accepted message exactly as it came over SMTP."""

    raws: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        reply = await super().handle_DATA(server, session, envelope)
        # No await between the parent's append and this one: `messages` and `raws` stay aligned.
        if reply.startswith("250"):
            self.raws.append(raw)
        return reply


@asynccontextmanager
async def raw_smtp_server() -> AsyncIterator[RawSink]:
    """A RawSink served over SMTP on loopback, on a port the OS picks."""
    sink = RawSink()
    async with smtp_server(sink):
        yield sink


def sending_settings(
    tmp_path: Path, database_url: str, sink: SmtpSink, **sections: Any
) -> Settings:
    """A daemon's settings that send to `sink` at once (quick retries, no quiet hours);
    `sections` are added to the test config, as base_config takes them."""
    return load_config(
        tmp_path,
        base_config(
            tmp_path,
            database_url,
            sink.port,
            delivery=FAST_DELIVERY,
            defaults=NO_QUIET_HOURS,
            **sections,
        ),
    )


class HtmlChecker(HTMLParser):
    """Records tags that do not close in the order they opened, and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.problems.append(f"<{tag}/> is not a void element")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_ELEMENTS:
            self.problems.append(f"</{tag}> closes a void element")
        elif not self.open:
            self.problems.append(f"</{tag}> without an open element")
        elif self.open[-1] != tag:
            self.problems.append(f"</{tag}> while <{self.open[-1]}> is open ({self.open})")
        else:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.chunks).split())


def check_html(html: str) -> str:
    """Assert the HTML is well-formed (every tag closed, in order); return its visible text."""
    checker = HtmlChecker()
    checker.feed(html)
    checker.close()
    assert checker.problems == [], checker.problems
    assert checker.open == [], f"never closed: {checker.open}"
    return checker.text


def plain(value: str) -> str:
    """Babel puts no-break spaces in amounts ("50,00\\xa0RON"): compare them as spaces."""
    return value.replace("\xa0", " ").replace("\u202f", " ")


@dataclass(frozen=True)
class Mail:
    message: EmailMessage
    subject: str
    text: str  # the plain-text part, no-break spaces as spaces
    html_text: str  # the visible text of the HTML part, whitespace collapsed
    html: str
    attachments: list[EmailMessage]


def check_mail(raw: bytes) -> Mail:
    """What every notice email must be: strict RFC 5322/MIME, text and HTML, no autoresponse."""
    message = email.message_from_bytes(raw, policy=email.policy.strict)
    assert isinstance(message, EmailMessage)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"] is not None
    assert MESSAGE_ID.match(str(message["Message-ID"])), message["Message-ID"]
    assert message.get_all("Message-ID") is not None
    assert len(message.get_all("Message-ID") or []) == 1
    subject = str(message["Subject"])
    assert "\n" not in subject
    assert "\r" not in subject
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None, "no text/plain part"
    assert html_part is not None, "no text/html part"
    assert isinstance(text_part, EmailMessage)
    assert isinstance(html_part, EmailMessage)
    html = html_part.get_content()
    html_text = check_html(html)
    return Mail(
        message=message,
        subject=plain(subject),
        text=plain(text_part.get_content()),
        html_text=plain(html_text),
        html=html,
        attachments=[part for part in message.iter_attachments() if isinstance(part, EmailMessage)],
    )


async def post_ok(daemon: Running, event: dict[str, Any] | bytes, **options: Any) -> str:
    """Post a sample event from its usual source, signed; assert 202; return the event id."""
    assert isinstance(event, dict)
    source = USUAL_SOURCE[event["type"]]
    status, body = await daemon.post(source, event, SECRETS[source], **options)
    assert status == 202, (event["type"], status, body)
    assert body["duplicate"] is False
    return str(body["event_id"])


async def mail_number(sink: RawSink, count: int) -> Mail:
    """Wait until `count` emails have arrived; check and return the `count`-th."""
    await sink.wait_for(count)
    return check_mail(sink.raws[count - 1])
