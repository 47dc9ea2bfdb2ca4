"""Named SQL queries, kept as SQL in `storage/sql/<family>.sql`.

Each query starts with a `-- name: <name>` line; the lines after it up to the next
name are the query. A query may write `{{part}}` where a part of `sql/parts.sql` (named
the same way) goes: SQL that several statements share, written once. Loaded once at
import, so a missing query or part fails at start, not at the first webhook.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_PART = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")


def load(family: str) -> Mapping[str, str]:
    parts = _read("parts")

    def part(match: re.Match[str]) -> str:
        if match[1] not in parts:
            raise ValueError(f"{family}.sql: no part {match[1]!r} in parts.sql")
        return parts[match[1]]

    return MappingProxyType({name: _PART.sub(part, body) for name, body in _read(family).items()})


@functools.cache
def _read(family: str) -> Mapping[str, str]:
    text = resources.files("notifyd.storage").joinpath("sql", f"{family}.sql").read_text("utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{family}.sql: query {name!r} is defined twice")
        queries[name] = body.strip()
    return MappingProxyType(queries)
