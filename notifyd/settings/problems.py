"""From pydantic's errors to the admin's: each problem under its TOML location, in words.

A location is the table that holds the key, then the key: "[smtp] port", "[sources.pbx]
secrets[0]", "[admin.tokens] ops", "[smpt]" for a table. Messages say what the key must be
and what the file has: "must be between 1 and 65535, got 70000".
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotated_types import Ge, Le
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from notifyd.settings.fields import TablesOf


class ConfigError(Exception):
    """The configuration file cannot be used; `problems` lists every key that is wrong, and
    `lines` the line of the file that sets each key it can place (lines.py)."""

    def __init__(
        self, path: Path | str, problems: list[tuple[str, str]], lines: dict[str, int] | None = None
    ) -> None:
        self.path = str(path)
        self.problems = problems
        self.lines = lines or {}
        super().__init__("\n".join(f"{self.path}: {problem}" for problem in self.described()))

    def described(self) -> list[str]:
        """Each problem as one line, "[delivery] pol_seconds: unknown key (line 42)"."""
        return [
            f"{key}: {message}" + (f" (line {self.lines[key]})" if key in self.lines else "")
            for key, message in self.problems
        ]


# What a TOML value of each pydantic type error should have been.
_EXPECTED = {
    "int_type": "an integer",
    "float_type": "an integer or a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "tuple_type": "an array",
    "list_type": "an array",
    "dict_type": "a table",
}


@dataclass
class Node:
    """What a place in the file holds: a table of keys (a model), a table of tables or of
    values (a mapping: `inner` is what each holds), an array, or a value."""

    kind: str
    model: type[BaseModel] | None = None
    inner: Node | None = None


@dataclass
class Location:
    table: list[str] = field(default_factory=list)
    key: str = ""
    declared: FieldInfo | None = None  # the field the location is in
    node: Node | None = None

    @property
    def label(self) -> str:
        return f"[{'.'.join(self.table)}]" + (f" {self.key}" if self.key else "")


def problems_of(
    error: ValidationError, root: type[BaseModel], from_env: Mapping[tuple[str, ...], str]
) -> list[tuple[str, str]]:
    """Every problem in `error`, keyed by its TOML location; a value that came from the
    environment says so (the file does not hold it)."""
    found = []
    for detail in error.errors(include_url=False):
        # A mapping's key is reported where its value is: (..., "PBX", "[key]") is [sources.PBX].
        loc = tuple(part for part in detail["loc"] if part != "[key]")
        # A string where a table may be is a value of its own (an old-form token), unless
        # the problem is the mapping's key.
        text_given = isinstance(detail["input"], str) and "[key]" not in detail["loc"]
        where = locate(root, loc, text_given=text_given)
        message = _message(detail, where, root_level=len(loc) == 1)
        variable = from_env.get(tuple(map(str, loc)))
        if variable:
            message += f" (from {variable})"
        found.append((where.label, message))
    return found


def locate(
    root: type[BaseModel], loc: tuple[str | int, ...], *, text_given: bool = False
) -> Location:
    """The TOML table and key of a pydantic location, and the field that declares it.

    The root's keys are tables; a section's key that holds a table (a model or a mapping) is
    a table when the location goes inside it; a mapping's key is a table when it holds one,
    unless the file gave it text (`text_given`), as the old form of a token is
    (`[admin.tokens] ops = "sha256:..."`).
    """
    where = Location()
    node: Node | None = Node("model", root)
    for index, part in enumerate(loc):
        inside = index < len(loc) - 1
        if node is not None and node.kind == "model" and node.model is not None:
            where.declared = node.model.model_fields.get(str(part))
            node = shape(where.declared.annotation) if where.declared else None
            holds_tables = node is not None and node.kind in ("model", "mapping")
            if index == 0 or (holds_tables and inside):
                where.table.append(str(part))
            else:
                where.key = str(part)
        elif node is not None and node.kind == "mapping":
            node = node.inner
            if node is not None and node.kind == "model" and (inside or not text_given):
                where.table.append(str(part))
            else:
                where.key = str(part)
        else:
            where.key += f"[{part}]" if isinstance(part, int) else f".{part}"
    where.node = node
    return where


def shape(annotation: Any) -> Node | None:
    origin = typing.get_origin(annotation)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(arguments) == 1:
        return shape(arguments[0])
    if origin is typing.Annotated:
        return shape(arguments[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return Node("model", annotation)
    if origin in (dict, collections.abc.Mapping):
        return Node("mapping", inner=shape(arguments[1]))
    if origin in (tuple, list):
        return Node("array")
    return Node("value")


def _message(detail: ErrorDetails, where: Location, *, root_level: bool) -> str:
    kind, value = detail["type"], detail["input"]
    context = detail.get("ctx") or {}
    if kind == "value_error":
        return str(context["error"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown section" if root_level else "unknown key"
    if kind in ("model_type", "dict_type") and where.node is not None:
        tables = _marker(where.declared, TablesOf)
        if where.node.kind == "mapping" and tables is not None:
            return f"must be a table of [{'.'.join(where.table)}.<{tables.what}>] tables"
        if where.node.kind == "model":
            return f"must be a table, got {type(value).__name__}"
    if kind in ("greater_than_equal", "less_than_equal") and where.declared is not None:
        low, high = _marker(where.declared, Ge), _marker(where.declared, Le)
        if low is not None and high is not None:
            return f"must be between {_number(low.ge)} and {_number(high.le)}, got {_number(value)}"
    if kind in _EXPECTED:
        return f"must be {_EXPECTED[kind]}, got {value!r}"
    return detail["msg"]


def _marker(info: FieldInfo | None, kind: type[Any]) -> Any:
    return next((m for m in info.metadata if isinstance(m, kind)), None) if info else None


def _number(value: Any) -> str:
    # Whole numbers in full: a limit of 80000000 written as 8e+07 is not what the file says.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
