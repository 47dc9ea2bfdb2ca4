"""What every section model shares, and the field types the TOML file needs.

A section is frozen, refuses unknown keys and takes TOML types as they are (strict: "25" is
not a port, `true` is not 1; an integer is a number of seconds). A validator states what is
wrong by raising ValueError("must be ..."): problems.py files it under its key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo


class Section(BaseModel):
    """One table of the TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass(frozen=True)
class Env:
    """Marks a key that the environment variable `name` overrides when it is set and not
    empty (root.py applies it before validation, so the value is checked like the file's)."""

    name: str


@dataclass(frozen=True)
class TablesOf:
    """Marks a table of tables, e.g. [sources.<name>]: `what` names the inner tables' key."""

    what: str


def section() -> Any:
    """The default of a section the file leaves out: an empty table, validated like a written
    one (so that its paths resolve against the file's folder)."""
    return Field(default_factory=dict, validate_default=True)


def one_of(choices: Sequence[str]) -> BeforeValidator:
    def check(value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    return BeforeValidator(check)


def array(value: object) -> object:
    """A TOML array, kept as a tuple (the settings are frozen); None passes (not in TOML)."""
    if isinstance(value, list):
        return tuple(value)
    if value is not None and not isinstance(value, tuple):
        raise ValueError(f"must be an array, got {value!r}")
    return value


def link_keys(value: object) -> object:
    """[daemon] link_secret: one key as a string (its form before keys rotated, and the
    environment's), several as an array; "" is none."""
    if isinstance(value, str):
        return (value,) if value else ()
    return array(value)


def distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("lists the same value twice")
    return values


def not_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def web_url(value: str) -> str:
    if value == "" or value.startswith(("https://", "http://")):
        return value
    raise ValueError("must be empty or an http(s) URL")


def mailbox(value: str) -> str:
    """A From:/Reply-To: mailbox, with or without a display name."""
    address = parseaddr(value)[1]
    if "@" not in address or any(c in value for c in "\r\n"):
        example = "'Operator <notices@example.com>'"
        raise ValueError(f"must be an address such as {example}, got {value!r}")
    return value


def _resolve(value: str, info: ValidationInfo) -> Path:
    """Relative paths are relative to the config file (context "base_dir"), so the daemon
    behaves the same whatever directory systemd or a shell starts it from."""
    path = Path(value).expanduser()
    base_dir = (info.context or {}).get("base_dir")
    return (base_dir / path).resolve() if base_dir is not None else path


def folder_path(value: object, info: ValidationInfo) -> object:
    """A folder that need not exist yet (it is made at start)."""
    if not isinstance(value, str):
        return value  # a Path from code, or the wrong type (reported by the field's type)
    return _resolve(not_empty(value), info)


def existing(kind: str) -> Callable[[object, ValidationInfo], object]:
    """An optional "file" or "folder" that must exist: "" is None."""
    test = Path.is_file if kind == "file" else Path.is_dir

    def check(value: object, info: ValidationInfo) -> object:
        if value is None or isinstance(value, Path):
            return value
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        if value == "":
            return None
        path = _resolve(value, info)
        if not test(path):
            raise ValueError(f"no such {kind}: {path}")
        return path

    return check
