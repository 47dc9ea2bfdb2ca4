"""structlog, configured once: JSON lines with masked email addresses and phone numbers."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Seven or more digits, optionally with a leading + and the usual separators: a phone number
# in any format a PBX writes. Shorter runs (ports, counts, status codes) are left alone.
_PHONE = re.compile(r"(?<![\w:-])\+?\d(?:[\d ().-]{5,}\d)(?![\w:-])")
# Shapes that have enough digits to look like a number but are not one: dates, IPv4.
_NOT_A_NUMBER = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,3}(?:\.\d{1,3}){3}")
_SECRET_KEYS = {"password", "secret", "secrets", "token", "authorization", "pin"}


def mask_email(text: str) -> str:
    return _EMAIL.sub(lambda m: f"{m[1]}***@{m[2]}", text)


def mask_phone(text: str) -> str:
    def hide(match: re.Match[str]) -> str:
        digits = [c for c in match[0] if c.isdigit()]
        if len(digits) < 7 or _NOT_A_NUMBER.fullmatch(match[0]):
            return match[0]
        return (
            ("+" if match[0].startswith("+") else "")
            + "*" * (len(digits) - 3)
            + "".join(digits[-3:])
        )

    return _PHONE.sub(hide, text)


# Most values logged hold neither an "@" nor seven digits: checking for those first skips
# the masking expressions, which try a match at every character (the address one backtracks
# through any run of word characters: 107 us for 300 of them, against 6 us for this check).
_SEVEN_DIGITS = re.compile(r"(?:\D*\d){7}")


def mask(text: str) -> str:
    if "@" in text:
        text = mask_email(text)
    if _SEVEN_DIGITS.match(text) is None:
        return text
    return mask_phone(text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {
            k: "[redacted]" if str(k).lower() in _SECRET_KEYS else _mask_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_pii(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Processor: masks addresses and numbers in every value and drops secrets by key."""
    for key, value in list(event_dict.items()):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif key not in ("timestamp", "level", "request_id", "event_id", "notice_id"):
            event_dict[key] = _mask_value(value)
    return event_dict


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_pii,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
