"""Named SQL queries, kept as SQL in `storage/sql/<family>.sql`.

Each query starts with a `-- name: <name>` line; the lines after it up to the next
name are the query. Loaded once at import, so a missing query fails at start, not at
the first webhook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def load(family: str) -> Mapping[str, str]:
    text = resources.files("notifyd.storage").joinpath("sql", f"{family}.sql").read_text("utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"{family}.sql: query {name!r} is defined twice")
        queries[name] = body.strip()
    return MappingProxyType(queries)
