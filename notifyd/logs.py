"""structlog, configured once: JSON lines with masked email addresses and phone numbers, for
our own log calls and for everything else that writes to the log (the standard library's
loggers, warnings, the event loop's exception handler, uncaught exceptions)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

# An address's characters are letters and digits of any script (the stored address is
# email-validator's Unicode form) and the bytes of a bytes repr (aiohttp's parser errors
# quote the raw header: b'\xd0\xb0@b\xc3\xbccher.de'), hence "\" among them. A match starts
# only where a run of them starts (the lookbehind): without it the expression was tried
# again at every character of a long run: 132 us for 300 of them, 7 us with it. "*"
# is excluded before it so that a number the SIP pass has masked (*******123@) stays as is.
_EMAIL = re.compile(
    r"(?<![*\w.%+\\-])([\w.%+\\-])[\w.%+\\-]*@"
    r"([\w.\\-]+\.(?:[^\W\d_]{2,}|xn--[\w-]+|(?:\\x[0-9a-fA-F]{2}){2,}))"
)
# A SIP URI's user part: a number as often as a name, and its host need not be a domain
# (sip:0721555123@10.0.0.5, sip:alice@pbx), which the address expression requires. The
# scheme follows anything but a letter: a digit too, as in a bytes repr (b'/\x01sip:...').
_SIP_USER = re.compile(r"(?<![^\W\d_])((?i:sips?):)([^\s@<>\"';,:/\\]+)@")
# What a dialled number may hold besides its digits.
_DIAL_STRING = frozenset("+0123456789*#-.()")
# Seven or more digits, optionally with a leading + and the usual separators: a phone number
# in any format a PBX writes. Shorter runs (ports, counts, status codes) are left alone. A
# number does not follow a letter or "-" (identifiers, dates), nor a ":" (times) unless
# after the "l", "p" or "s" of tel:, sip: and sips: (sip:0721555123 without a host). Two
# lookbehinds, not an alternation of them: that took 7.8 us on a 32-character id, these 0.9.
_PHONE = re.compile(r"(?<![\w-])(?<![^lLpPsS]:)\+?\d(?:[\d ().-]{5,}\d)(?![\w:-])")
# Shapes that have enough digits to look like a number but are not one: dates, IPv4.
_NOT_A_NUMBER = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,3}(?:\.\d{1,3}){3}")
# Credentials in text a client chose, as aiohttp's parser errors and tracebacks quote it: the
# token of a subscriber link's path (http/pages/: /v1/preferences/<token>, /v1/unsubscribe/
# <token>, /v1/links/<token>/renew), which opens the account's pages, and an Authorization
# header's token. A route as declared ("{token}") is left as it is.
_LINK_TOKEN = re.compile(r"(/v1/(?:preferences|unsubscribe|links)/)[^/?#\s'\"\\{]+")
_BEARER = re.compile(r"((?i:bearer)\s+)[^\s'\"\\]+")
_SECRET_KEYS = {"password", "secret", "secrets", "token", "authorization", "pin"}
# Our own identifiers and fields: nothing a client chose. (request_id is not one of them: a
# client may send any X-Request-Id, an address or a number among them.)
_NOT_MASKED = {"timestamp", "level", "event_id", "notice_id"}


def _hide_number(number: str) -> str:
    digits = [c for c in number if c.isdigit()]
    if len(digits) < 7 or _NOT_A_NUMBER.fullmatch(number):
        return number
    return ("+" if number.startswith("+") else "") + "*" * (len(digits) - 3) + "".join(digits[-3:])


def _hide_sip_user(match: re.Match[str]) -> str:
    user = match[2]
    if _DIAL_STRING.issuperset(user):
        return f"{match[1]}{_hide_number(user)}@"
    return f"{match[1]}{user[0]}***@"


def mask_email(text: str) -> str:
    """Addresses, and the user part of SIP URIs, down to their first character (a number in
    a SIP URI down to its last three digits, as phone numbers are)."""
    if ":" in text:
        text = _SIP_USER.sub(_hide_sip_user, text)
    return _EMAIL.sub(lambda m: f"{m[1]}***@{m[2]}", text)


def mask_credentials(text: str) -> str:
    """Link tokens in paths and bearer tokens, as "***" and "[redacted]"."""
    if "/v1/" in text:
        text = _LINK_TOKEN.sub(r"\1***", text)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(r"\1[redacted]", text)
    return text


def mask_phone(text: str) -> str:
    return _PHONE.sub(lambda match: _hide_number(match[0]), text)


# Most values logged hold no "@": checking for one first skips the address expressions
# (8 us for 300 word characters, against 0.1 us for the check). A check for seven digits
# before the phone expression saved nothing measurable once that expression had its two
# lookbehinds (6.9 us for the check on 300 word characters, 5.3 us for the expression).
def mask(text: str) -> str:
    text = mask_credentials(text)
    if "@" in text:
        text = mask_email(text)
    return mask_phone(text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if value is None or isinstance(value, int | float):  # bool is an int
        return value
    if isinstance(value, dict):
        return {
            k: "[redacted]" if str(k).lower() in _SECRET_KEYS else _mask_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_mask_value(v) for v in value]
    # Anything else (an exception, bytes, a UUID, a path) the renderer would write as its
    # repr, unmasked: its text instead, masked.
    return mask(str(value))


# Values that masking leaves as they are and that come back on every line: the messages,
# the source names, the event types. Held to skip the expressions for them (mask_pii was a
# third of a webhook's log line, docs/performance.md, stop 28). Only unchanged text is held
# (nothing the masking hides is kept), only short text, and the set stops growing when full:
# never evicting, it costs nothing once the everyday words are in it.
_CLEAN: set[str] = set()
_CLEAN_MAX = 4096
_CLEAN_LONGEST = 40
# Keys whose value is new on every line: holding them would fill the set for nothing.
_NEVER_HELD = frozenset({"request_id", "webhook_id", "account_id"})


def _mask_text(key: str, text: str) -> str:
    if text in _CLEAN:
        return text
    masked = mask(text)
    if (
        masked == text
        and len(text) <= _CLEAN_LONGEST
        and len(_CLEAN) < _CLEAN_MAX
        and key not in _NEVER_HELD
    ):
        _CLEAN.add(text)
    return masked


def mask_pii(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: masks addresses and numbers in every value and drops secrets by key."""
    # Values are replaced, keys neither added nor removed: the dict can be walked as it is.
    for key, value in event_dict.items():
        if key in _NOT_MASKED:
            continue
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif type(value) is str:
            event_dict[key] = _mask_text(key, value)
        elif value is not None and type(value) is not int:
            event_dict[key] = _mask_value(value)
    return event_dict


def _not_json(value: Any) -> Any:
    """What structlog's renderer writes for a value JSON has no type for (mask_pii has
    made nearly all of them text by then): its own `__structlog__`, else its repr."""
    own = getattr(value, "__structlog__", None)
    return own() if callable(own) else repr(value)


# Made once: json.dumps builds an encoder of the same options for every line it writes
# (docs/performance.md, "The intake's floor").
_ENCODER = json.JSONEncoder(default=_not_json)


def _json_line(event_dict: Any, **_options: Any) -> str:
    """JSONRenderer's serializer; `_options` (its `default`) are the encoder's already."""
    return _ENCODER.encode(event_dict)


log = structlog.get_logger(__name__)


class _CurrentStdout(logging.StreamHandler[TextIO]):
    """Writes to sys.stdout as it is when a record comes: a handler holding the one there
    was at configure() would write to a closed file once a test had replaced it."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


# The root logger's handler that configure() installed, replaced by the next call (a reload).
_installed: list[logging.Handler] = []


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # One writer for every logger: the factory made a new one (and looked up its file's
    # lock) for each line, since loggers are not cached (a reload configures anew).
    printer = structlog.PrintLogger(file=stream or sys.stdout)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            mask_pii,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_args: printer,
        cache_logger_on_first_use=False,
    )

    # The libraries' records (APScheduler's job errors, aiohttp's parser errors, asyncio's,
    # asyncpg's) go through the same masking and renderer; their tracebacks are rendered
    # into the "exception" value first, so they are masked like any other text.
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStdout()
    )
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                mask_pii,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed[:] = [handler]
    root.addHandler(handler)
    # Their info lines are for their own debugging (APScheduler logs two for every run of
    # every job) and were never shown: warnings and errors only, unless the level is higher.
    root.setLevel(max(numeric_level, logging.WARNING))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    log.critical("uncaught exception", exc_info=(kind, error, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    log.critical(
        "uncaught exception in a thread",
        thread=args.thread.name if args.thread else None,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def log_loop_exceptions(loop: asyncio.AbstractEventLoop) -> None:
    """Errors the loop reports itself (a task's exception never retrieved, a callback that
    raised, a transport that failed) go to our log, masked, instead of a plain traceback."""

    def report(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        log.error(
            context.get("message") or "unhandled exception in the event loop",
            # The task, future or handle: their repr names the coroutine and, for a task,
            # repeats the exception's text (masked here like any other value).
            **{
                key: repr(value)
                for key, value in context.items()
                if key not in ("message", "exception")
            },
            exc_info=error if isinstance(error, BaseException) else False,
        )

    loop.set_exception_handler(report)
