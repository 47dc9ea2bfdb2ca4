"""Notice -> message bytes: Jinja2 templates per notice kind and language, no other I/O.

Templates are `<kind>.<lang>.txt` and `<kind>.<lang>.html`. The text template defines
`{% set subject %}` and `{% set line %}` (the notice as one digest line) and its body is
the plain-text part; the HTML template extends `layout.html`. An admin may override any
template from a folder named in the config. The message is composed by `mime`, whose
header writers refuse a CR or LF in any value, so event data cannot inject headers (the
`email` package only parses a message back, for previews and tests).
"""

from __future__ import annotations

import email.policy
import email.utils
import functools
import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2
import markupsafe
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal

from notifyd.catalogue.locale import zone_name
from notifyd.mail import mime
from notifyd.mail.addresses import Origin, wire_form
from notifyd.mail.caller_ids import caller_in_language, phone_in_language
from notifyd.settings.branding import BrandingSettings


class Renderable(Protocol):
    """What a template needs of a notice (a claimed notice, or a preview's sample)."""

    @property
    def kind(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def recipient(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def context(self) -> Mapping[str, Any]: ...
    @property
    def subscriber_name(self) -> str | None: ...
    @property
    def subscriber_username(self) -> str | None: ...


@dataclass(frozen=True)
class NoticeView:
    """A Renderable built by hand: `notifyd preview` and tests."""

    kind: str
    language: str
    data: Mapping[str, Any]
    timezone: str = "Europe/Bucharest"
    recipient: str = "subscriber@example.com"
    message_id: str = "<preview@notifyd.invalid>"
    context: Mapping[str, Any] = field(default_factory=dict)
    subscriber_name: str | None = "Ana Popescu"
    subscriber_username: str | None = "ana.popescu"


@dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class RenderedNotice:
    subject: str
    text: str
    html: str
    line: str


class TemplateError(Exception):
    """A template is missing or broken; the message names the template."""


class _Environment(jinja2.Environment):
    """Jinja's environment, with each template's globals a plain dict. Jinja chains them
    to the environment's (a ChainMap, so that later changes to those show through), and
    each render then walks the chain twice, to copy it into the context and to list its
    keys: a sixth of a message's rendering. This renderer never changes its globals after
    it is built (a reload builds a new one), so a snapshot is the same."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}

    def get_template(
        self,
        name: str | jinja2.Template,
        parent: str | None = None,
        globals: MutableMapping[str, Any] | None = None,
    ) -> jinja2.Template:
        """Each template's `extends "layout.html"` and `include "footer..."` ask for the
        template on every render: Jinja's cache answers under a lock, behind a weak
        reference to the loader, and reorders its LRU queue (a scan) each time. Resolved
        once per environment here: the templates do not change under a renderer (a reload
        builds a new one, with new environments)."""
        if globals is not None or not isinstance(name, str):
            return super().get_template(name, parent, globals)
        template = self._resolved.get((name, parent))
        if template is None:
            template = super().get_template(name, parent)
            self._resolved[(name, parent)] = template
        return template

    @functools.cached_property
    def _resolved(self) -> dict[tuple[str, str | None], jinja2.Template]:
        return {}


# Embeddings, overrides and isolates (and their ends): what can reorder text after it.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_ISOLATE_OPENERS = frozenset("\u2066\u2067\u2068")
_PDI = "\u2069"


def _isolate_bidi(value: Any) -> Any:
    """Each value a template writes, as Jinja's `finalize`. A caller name with an override
    left open (U+202E) would reverse the rest of its line as shown, the numbers after it
    included. A value that holds such controls is put in an isolate (FSI ... PDI), whose end
    closes every embedding and override opened inside it (UAX #9); the value's own isolates
    are closed first, and a PDI of its own that closes nothing is dropped (it would close
    ours early). ASCII holds no such control: `isascii` (a flag CPython keeps on every
    string) answers before the expression is run, about 20 values a message."""
    if not isinstance(value, str) or value.isascii() or not _BIDI_CONTROLS.search(value):
        return value
    kept: list[str] = []
    depth = 0
    for char in value:
        if char in _ISOLATE_OPENERS:
            depth += 1
        elif char == _PDI:
            if not depth:
                continue
            depth -= 1
        kept.append(char)
    isolated = "\u2068" + "".join(kept) + _PDI * (depth + 1)
    if isinstance(value, markupsafe.Markup):
        # The value was safe HTML already; what is added are bidi controls, not markup.
        return markupsafe.Markup(isolated)  # noqa: S704
    return isolated


class Renderer:
    def __init__(
        self,
        sender: str,
        *,
        reply_to: str = "",
        sender_names: Mapping[str, str] | None = None,
        override_folder: Path | None = None,
        branding: BrandingSettings | None = None,
        company: str = "",
    ) -> None:
        # The operator's own domain may be an IDN: headers carry its A-label.
        self.origin = Origin.of(sender, sender_names or {}, reply_to)
        loaders: list[jinja2.BaseLoader] = []
        if override_folder is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_folder)))
        loaders.append(jinja2.PackageLoader("notifyd", "templates"))
        loader = jinja2.ChoiceLoader(loaders)
        common = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "trim_blocks": True,
            "lstrip_blocks": True,
            # Templates change only with a reload, which builds a new Renderer: without this
            # every message stat()s its template files.
            "auto_reload": False,
            "finalize": _isolate_bidi,
        }
        self._text = _Environment(
            autoescape=False,  # plain-text part: nothing is HTML here
            keep_trailing_newline=True,
            **common,  # type: ignore[arg-type]
        )
        self._html = _Environment(autoescape=True, **common)  # type: ignore[arg-type]
        # (text, html) by "<kind>.<lang>": Jinja's own cache takes a lock and a loader call.
        self._templates: dict[str, tuple[jinja2.Template, jinja2.Template]] = {}
        for env in (self._text, self._html):
            # Before any template is loaded: each snapshots the globals (_Environment).
            env.globals["brand"] = brand_values(branding or BrandingSettings(), company, sender)
            env.filters.update(
                local_datetime=local_datetime,
                local_date=local_date,
                money=money,
                phone=phone_in_language,
                caller=caller_in_language,
                filesize=filesize,
                number=number,
            )

    def render(self, notice: Renderable) -> RenderedNotice:
        context = template_context(notice)
        name = f"{notice.kind}.{notice.language}"
        try:
            templates = self._templates.get(name)
            if templates is None:
                templates = self._templates[name] = (
                    self._text.get_template(f"{name}.txt"),
                    self._html.get_template(f"{name}.html"),
                )
            module = templates[0].make_module(context)
            subject = _one_line(getattr(module, "subject", ""))
            html = templates[1].render(
                context,
                subject=subject,
                # A digest's counted summary, worded once in the text template.
                summary=_one_line(getattr(module, "summary", "")),
            )
        except jinja2.TemplateNotFound as error:
            raise TemplateError(f"no template {error.name}") from error
        except jinja2.TemplateError as error:
            raise TemplateError(f"{name}: {error}") from error
        return RenderedNotice(
            subject=subject,
            text=str(module).strip() + "\n",
            html=html,
            line=_one_line(getattr(module, "line", "")),
        )

    def mail(
        self,
        notice: Renderable,
        now: datetime,
        attachments: Sequence[MailAttachment] = (),
        *,
        origin: Origin | None = None,
        stream: str = "",
    ) -> bytes:
        """The message as sent: bytes with CRLF line ends (see `mime`). `origin`: the From
        and Reply-To of the notice's stream (else the renderer's); `stream`: its name, for
        the X-Notifyd-Stream header (docs/delivery.md "Mail streams")."""
        rendered = self.render(notice)
        origin = origin or self.origin
        headers = [
            mime.address_header("From", origin.sender_in(notice.language)),
            # The domain as its A-label: a Unicode one would become an encoded word.
            mime.mailbox_header("To", wire_form(notice.recipient)),
        ]
        if origin.reply_to:
            headers.append(mime.address_header("Reply-To", origin.reply_to))
        headers += [
            mime.text_header("Subject", rendered.subject),
            mime.header("Date", _date_header(now.replace(microsecond=0), now.tzinfo)),
            mime.header("Message-ID", notice.message_id),
            # RFC 3834: tells auto-responders (vacation replies) not to answer.
            mime.header("Auto-Submitted", "auto-generated"),
            mime.header("X-Auto-Response-Suppress", "All"),
            mime.header("Content-Language", notice.language),
        ]
        if stream:
            # Which stream this is, for the relay's routing and the operator's filters.
            headers.append(mime.header("X-Notifyd-Stream", stream))
        unsubscribe = notice.context.get("unsubscribe_url")
        if unsubscribe:
            # RFC 8058 one-click unsubscribe: offers, digests, and the notices of a category
            # the subscriber can switch off (delivery/send.py decides which).
            headers.append(mime.header("List-Unsubscribe", f"<{unsubscribe}>"))
            headers.append(mime.header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        return mime.compose(
            headers,
            rendered.text,
            rendered.html,
            [(a.filename, a.content_type, a.data) for a in attachments],
        )

    def message(
        self,
        notice: Renderable,
        now: datetime,
        attachments: Sequence[MailAttachment] = (),
    ) -> EmailMessage:
        """The same message parsed back by the `email` package (previews and tests)."""
        parsed = email.message_from_bytes(
            self.mail(notice, now, attachments), policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        return parsed

    def line(self, notice: Renderable) -> str:
        """The notice as one line of a digest."""
        return self.render(notice).line

    def check(self, samples: Sequence[Renderable]) -> list[str]:
        """Render every sample; return one problem per template that fails (for start/reload)."""
        problems = []
        for sample in samples:
            try:
                self.render(sample)
            except TemplateError as error:
                problems.append(str(error))
        return problems


@functools.lru_cache(maxsize=8)
def _date_header(moment: datetime, _zone: object) -> str:
    # To the second, as the header is: the messages of one second share it. The zone is in
    # the key because equal moments in two zones are equal datetimes.
    return email.utils.format_datetime(moment)


def brand_values(branding: BrandingSettings, company: str, sender: str) -> dict[str, str]:
    """What templates read as `brand` (BrandingSettings.shown), the name to show being
    Settings.company, else the sender's display name."""
    return branding.shown(company or email.utils.parseaddr(sender)[0] or branding.company_name)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def template_context(notice: Renderable) -> dict[str, Any]:
    return {
        "kind": notice.kind,
        "data": notice.data,
        "extra": notice.context,
        "zone": notice.timezone,
        "lang": notice.language,
        "subscriber_name": notice.subscriber_name,
        "username": notice.subscriber_username,
    }


# -- filters: every value a subscriber reads is formatted for their language and zone ------
#
# Pure, and cached: one message formats the same number or moment in its subject, its digest
# line, its text and its HTML part (a missed call: eight numbers, three moments), and a
# broadcast formats its own fields for every subscriber. Bounded, so a day of distinct
# callers costs a fixed amount of memory.
_FORMATTED = functools.lru_cache(maxsize=4096, typed=True)


def _moment(value: str | datetime) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


@_FORMATTED
def local_datetime(value: str | datetime, zone: str, language: str) -> str:
    """'22 noiembrie 2026, 10:15 (Europe/Bucharest)' in the subscriber's zone and language.
    The zone is named because a subscriber reads the email elsewhere too (travelling, or an
    address shared with an office abroad). Its IANA name, not an abbreviation: the CLDR data
    has 'EET' in Romanian but '+0200' in English for the same zone, and names like 'CST'
    mean three zones; the name reads the same in both languages."""
    moment = _moment(value)
    try:
        moment, shown_zone = moment.astimezone(ZoneInfo(zone)), zone_name(zone)
    except OverflowError:
        # Before year 1 or after 9999 in that zone (Go's zero time, west of UTC): the time
        # as the sender wrote it, with its offset, rather than a notice that cannot render.
        minutes = int((moment.utcoffset() or timedelta(0)).total_seconds()) // 60
        sign = "+" if minutes >= 0 else "-"
        hours, minutes = divmod(abs(minutes), 60)
        shown_zone = f"UTC{sign}{hours:02d}:{minutes:02d}" if hours or minutes else "UTC"
    shown = format_datetime(moment, format="d MMMM y, HH:mm", locale=language)
    return f"{shown} ({shown_zone})"


@_FORMATTED
def local_date(value: str | date, language: str) -> str:
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return format_date(day, format="d MMMM y", locale=language)


@_FORMATTED
def money(amount: str | Decimal, currency: str, language: str) -> str:
    """'12,50 RON' (ro) or 'RON 12.50' (en): Babel's currency format for the language, with
    a space after a code in English (Babel writes 'RON12.50')."""
    value = Decimal(str(amount))
    # At least the currency's decimals, and every one the amount has past them: a per-minute
    # rate's 0.125 RON is not 0.12 (Babel rounds to the currency's digits, half to even).
    if language == "en":
        return format_currency(
            value, currency, format="¤\u00a0#,##0.00", locale=language, decimal_quantization=False
        )
    return format_currency(value, currency, locale=language, decimal_quantization=False)


@_FORMATTED
def number(value: int | float | Decimal, language: str) -> str:
    return format_decimal(value, locale=language)


@_FORMATTED
def filesize(size: int, language: str) -> str:
    units = ("B", "KB", "MB", "GB")
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    shown = format_decimal(round(value, 1) if unit else int(value), locale=language)
    return f"{shown} {units[unit]}"
