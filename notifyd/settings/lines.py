"""Where in the config file a problem's key is, as an editor counts lines: root.py gives
ConfigError the line of each problem it can place (problems.py names the key, "[smtp] port";
this finds the line that sets it). tomllib gives values, not positions, so this reads the
text: table headers, then `key =` lines under them, dotted keys and inline tables' parents
included. A key it cannot place (a default that failed, a value from the environment) gets
no line rather than a wrong one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
# A bare, "quoted" or 'literal' key part; a key is parts joined by dots, then "=".
_ONE = r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'"""
_KEY = re.compile(rf"^\s*((?:{_ONE})(?:\s*\.\s*(?:{_ONE}))*)\s*=")
_PART = re.compile(_ONE)
# "[sources.pbx] secrets[0]" -> table "sources.pbx", key "secrets"; "[colours]" -> a table.
_PROBLEM = re.compile(r"^\[([^\]]+)\](?: ([^\[\s]+))?")


def _parts(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _PART.findall(dotted)]


def places(text: str) -> dict[tuple[str, ...], int]:
    """The first line (1-based) that names each table and each key, by its full path."""
    found: dict[tuple[str, ...], int] = {}
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            found.setdefault(tuple(table), number)
            continue
        key = _KEY.match(line)
        if key:
            path = [*table, *_parts(key.group(1))]
            # Each prefix too: `sender_names = { ro = 5 }` is where [smtp.sender_names] ro is.
            for end in range(len(table) + 1, len(path) + 1):
                found.setdefault(tuple(path[:end]), number)
    return found


def line_of(key: str, found: Mapping[tuple[str, ...], int]) -> int | None:
    """The line of a problem's key, or of the nearest table or key holding it."""
    named = _PROBLEM.match(key)
    if named is None:
        return None
    path = [*_parts(named.group(1)), *([named.group(2)] if named.group(2) else [])]
    while path:
        if tuple(path) in found:
            return found[tuple(path)]
        path.pop()
    return None


def lines_of(text: str, problems: Iterable[tuple[str, str]]) -> dict[str, int]:
    """The line of each problem's key that the file sets; one that came from the environment
    ("(from NOTIFYD_…)") is not the file's, and gets no line."""
    found = places(text)
    lines = {}
    for key, message in problems:
        line = None if "(from NOTIFYD_" in message else line_of(key, found)
        if line is not None:
            lines[key] = line
    return lines
