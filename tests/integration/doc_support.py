"""docs/integrations.md and docs/operations.md as a whole, for the tests that hold every
block of them to the code (beside send_support.py, which reads one snippet): each fenced
block and the marker before it, a TOML snippet filled in and merged into a test config, and
a sample the doc shows (an answer, a callback's body) compared with what notifyd really
sent."""

from __future__ import annotations

import grp
import os
import pwd
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from tests.conftest import PBX_SECRET
from tests.integration.listeners_support import tls_files
from tests.integration.send_support import INTEGRATIONS, OPERATIONS

MARKER = re.compile(r"<!-- snippet: ([\w-]+)(?: [^>]*)? -->")
# A value the doc elides ("whsec_…", "9b7e…"): any non-empty string stands for it.
ELIDED = "…"
PASSWORD = "doc-placeholder-filled-0123"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class Block:
    """A fenced block of the doc: where it opens, its language, the snippet name before it."""

    line: int
    language: str
    name: str | None


# The documents whose every block is a snippet some test reads (test_doc_blocks.py).
DOCS = [INTEGRATIONS, OPERATIONS]


def blocks(doc: Path = INTEGRATIONS) -> list[Block]:
    """The fenced blocks of `doc`, a block indented under a list item too (its marker is
    indented the same)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    inside = False
    for number, line in enumerate(lines, start=1):
        if not line.lstrip().startswith("```"):
            continue
        if not inside:
            marker = MARKER.fullmatch(lines[number - 2].strip()) if number > 1 else None
            language = line.lstrip()[3:].strip()
            found.append(Block(number, language, marker.group(1) if marker else None))
        inside = not inside
    return found


def owner() -> str:
    """install(1)'s owner options for the test's user, in place of the doc's (root, uucp)."""
    return f"-o {pwd.getpwuid(os.getuid()).pw_name} -g {grp.getgrgid(os.getgid()).gr_name}"


def filled(toml_text: str, secret_file: Path, **values: str) -> str:
    """A TOML snippet with its elided values filled in: with the value `values` gives for
    the key, else a `whsec_…` with the pbx source's secret and another "…" with a password
    long enough for any; a secret file's path with `secret_file`."""

    def fill(found: re.Match[str]) -> str:
        key, opened, value, closed = found.groups()
        secret = values.get(key) or (PBX_SECRET if value.startswith("whsec_") else PASSWORD)
        return f'{key} = {opened}"{secret}"{closed}'

    text = re.sub(r'^(\w+) *= (\[?)"([^"\n]*…)"(\]?)', fill, toml_text, flags=re.M)
    return re.sub(r'secret_file = "[^"]*"', f'secret_file = "{secret_file}"', text)


def sections(toml_text: str) -> dict[str, dict[str, Any]]:
    """A TOML snippet as base_config's sections: nested tables under dotted names."""
    found: dict[str, dict[str, Any]] = {}

    def walk(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                walk(f"{prefix}.{key}" if prefix else key, value)
            else:
                found.setdefault(prefix, {})[key] = value

    walk("", tomllib.loads(toml_text))
    return found


def merged(config: dict[str, Any], toml_text: str) -> dict[str, Any]:
    """`config` with the snippet's values over its own."""
    for section, values in sections(toml_text).items():
        config.setdefault(section, {}).update(values)
    return config


def like(documented: Any, real: Any, where: str = "") -> None:
    """`real` has the doc's shape: the same keys, list lengths and types; a doc string with
    "…" stands for any string, a doc timestamp for one of the same form; the rest equal."""
    if isinstance(documented, dict):
        assert isinstance(real, dict), (where, real)
        assert sorted(real) == sorted(documented), (where, documented, real)
        for key, value in documented.items():
            like(value, real[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(real, list), (where, real)
        assert len(real) == len(documented), (where, real)
        for n, (doc_item, real_item) in enumerate(zip(documented, real, strict=True)):
            like(doc_item, real_item, f"{where}[{n}]")
    elif isinstance(documented, str) and ELIDED in documented:
        assert isinstance(real, str), (where, real)
        assert real, where
    elif isinstance(documented, str) and TIMESTAMP.fullmatch(documented):
        form = re.sub(r"\d", r"\\d", documented).replace(".", r"\.").replace("+", r"\+")
        assert isinstance(real, str), (where, real)
        assert re.fullmatch(form, real), (where, documented, real)
    else:
        assert real == documented, (where, documented, real)


# The keys whose files the loader opens (a certificate's key must be the certificate's) or
# whose folder it makes: an operator's paths under /etc and /var, not this machine's.
FILE_KEY = re.compile(r'^(cert_file|key_file|ca_file|state_dir) *= *"[^"]*"', re.M)


def with_files(toml_text: str, tmp_path: Path) -> str:
    """A TOML snippet with each file it names made in `tmp_path`: a certificate and its key
    (of a new CA) for cert_file and key_file, that CA for ca_file, a folder for state_dir."""
    ca = trustme.CA()
    made = {**tls_files(tmp_path, ca, "doc"), "state_dir": str(tmp_path / "state")}
    made["ca_file"] = str(tmp_path / "doc-ca.pem")
    ca.cert_pem.write_to_path(made["ca_file"])
    return FILE_KEY.sub(lambda found: f'{found.group(1)} = "{made[found.group(1)]}"', toml_text)
