"""The "every key with its default" part of config/notifyd.example.toml, from the models.

    make example-config
    (= .venv/bin/python -m notifyd.settings.example config/notifyd.example.toml)

rewrites the block between BEGIN and END in place; the rest of the file (its header, the
[sources.<name>] and [thresholds.<CUR>] tables, which have no defaults) is written by hand.
tests/unit/test_example_config.py fails when the block is not what the models say.

Each section's keys in the model's order: the field's description as a comment, then
`key = default`. A field with `examples` shows its first example instead (a value to deploy
with, e.g. state_dir), and its comment says the default. A key that an environment variable
overrides says so. A mapping is its own table after its section's keys, e.g.
[delivery.lifetimes]; an empty one shows its example commented out, since any entry changes
what happens.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from annotated_types import Ge, Le
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from notifyd.model import QuietHours
from notifyd.settings.fields import Env
from notifyd.settings.problems import shape
from notifyd.settings.root import Settings

BEGIN = "# --- BEGIN written by `make example-config` from notifyd/settings/: edit the models ---"
END = "# --- END written by `make example-config` ---"
WIDTH = 92


def render() -> str:
    """The block, markers included."""
    lines = [BEGIN]
    for name, info in Settings.model_fields.items():
        node = shape(info.annotation)
        if node is not None and node.kind == "model" and node.model is not None:
            lines += _section(name, node.model)
    return "\n".join([*lines, "", END])


def _section(name: str, model: type[BaseModel]) -> list[str]:
    keys, tables = [], []
    for key, field in model.model_fields.items():
        node = shape(field.annotation)
        if node is not None and node.kind == "mapping":
            tables += _table(f"{name}.{key}", field)
        elif node is not None and node.kind == "model" and node.model is not None:
            tables += _section(f"{name}.{key}", node.model)  # [http.admin]: a table of keys
        else:
            keys += [*_comment(_description(field)), f"{key} = {_value(_shown(field))}"]
    doc = model.__dict__.get("__doc__")
    head = [*_comment(inspect.cleandoc(doc)), ""] if doc else []
    # A section of tables only ([admin] is [admin.tokens]) needs no header of its own.
    lines = ["", f"[{name}]", *head, *keys] if keys or head else []
    return lines + tables


def _table(name: str, field: FieldInfo) -> list[str]:
    lines = ["", f"[{name}]", *_comment(field.description or "")]
    entries = field.get_default(call_default_factory=True)
    examples = field.examples or []
    commented = not entries and bool(examples)
    shown = examples[0] if commented else entries
    # Values first, then the entries that are tables of their own ([admin.tokens.<name>]):
    # a key written after a table header would belong to that table.
    written = [
        f"{_key(key)} = {_value(value)}" for key, value in shown.items() if not _is_table(value)
    ]
    for key, value in shown.items():
        if _is_table(value):
            written += ["", f"[{name}.{_key(key)}]"]
            written += [f"{_key(inner)} = {_value(item)}" for inner, item in value.items()]
    lines += [f"# {line}".rstrip() if commented else line for line in written]
    return lines


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping | BaseModel)


def _shown(field: FieldInfo) -> Any:
    return field.examples[0] if field.examples else field.get_default(call_default_factory=True)


def _description(field: FieldInfo) -> str:
    text = field.description or ""
    low, high = _marker(field, Ge), _marker(field, Le)
    if low is not None and high is not None:
        text += f"\n\nFrom {_value(low.ge)} to {_value(high.le)}."
    if field.examples:
        default = _value(field.get_default(call_default_factory=True))
        text += f"\n\nDefault: {default}."
    for marker in field.metadata:
        if isinstance(marker, Env):
            text += f"\n\nThe environment variable {marker.name}, when set, replaces it."
    return text.strip()


def _marker(field: FieldInfo, kind: type[Any]) -> Any:
    return next((m for m in field.metadata if isinstance(m, kind)), None)


def _comment(text: str) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n\n"):
        lines += textwrap.wrap(
            " ".join(paragraph.split()),
            WIDTH - 2,
            break_long_words=False,
            break_on_hyphens=False,
        )
    return [f"# {line}" for line in lines]


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _value(value: object) -> str:
    """The TOML literal of a default."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, time):
        value = f"{value:%H:%M}"
    if value is None:
        value = ""
    if isinstance(value, Decimal | QuietHours | Path):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"no TOML form for a default of type {type(value).__name__}")
    return json.dumps(value, ensure_ascii=False)


def replace_block(text: str, block: str) -> str:
    """`text` with the part from BEGIN to END (markers included) replaced by `block`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no block marked {BEGIN!r} ... {END!r}")
    return text[:start] + block + text[end + len(END) :]


def main(argv: Sequence[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv) or ["config/notifyd.example.toml"]
    for name in paths:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
            updated = replace_block(text, render())
        except (OSError, ValueError) as error:
            print(f"{path}: {error}", file=sys.stderr)
            return 1
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            print(f"{path}: updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
