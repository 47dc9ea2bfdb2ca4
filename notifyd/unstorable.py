"""Text that cannot be stored: NUL characters and lone surrogates, found and named by field.

PostgreSQL refuses a NUL in text and in JSON, and a lone surrogate is not Unicode text (it
cannot be encoded to be stored, logged or sent): either one reaching a query was a 500.
The validators refuse them where they know the field; this module is the backstop that
every request body and parameter passes through, so a string field added later (or a
dict key) cannot carry one to the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

NUL = "must not contain the NUL character"
SURROGATE = "must not contain a lone surrogate (it is not text)"
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def problem(text: str) -> str | None:
    """What is wrong with `text`, or None when it can be stored."""
    if "\x00" in text:
        return NUL
    if has_surrogate(text):
        return SURROGATE
    return None


def may_hold_nul(raw: bytes) -> bool:
    """Whether a JSON body may decode to a NUL: JSON can only write one as an escape, so the
    bodies that cannot (nearly all) skip the walk through their values."""
    return b"\\u0000" in raw


def found(value: Any, path: str = "") -> dict[str, str]:
    """Every string in `value` (a model, a JSON value) that cannot be stored, by its path
    (`subject.ro`, `data.previous.0`); a bad dict key is reported on its container."""
    problems: dict[str, str] = {}
    _walk(value, path, problems)
    return problems


def _walk(value: Any, path: str, problems: dict[str, str]) -> None:
    if isinstance(value, str):
        wrong = problem(value)
        if wrong is not None:
            problems.setdefault(path or "body", wrong)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _walk(getattr(value, name), f"{path}.{name}" if path else name, problems)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and (wrong := problem(key)) is not None:
                problems.setdefault(path or "body", f"a key {wrong}")
            _walk(item, f"{path}.{key}" if path else str(key), problems)
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            _walk(item, f"{path}.{index}" if path else str(index), problems)


def in_refused_json(raw: bytes) -> dict[str, str]:
    """For a body the JSON parser refused: the lone surrogates it holds, by path, when that
    is why (pydantic's parser refuses them as invalid JSON; the standard library's reads
    them, so the answer can name the field). Empty when the body is not JSON at all."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return found(value)
