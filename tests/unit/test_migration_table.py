"""docs/operations.md's table of migrations ("Expand, then contract") has a row for every
migration file, saying whether it is safe while the previous release's hosts still run: a
new migration cannot land without its author saying so."""

from __future__ import annotations

import re
from pathlib import Path

from notifyd.storage import schema

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def migration_rows() -> dict[str, str]:
    """`NNNN_name` -> the safety cell, from the table under "### Expand, then contract"."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text.split("### Expand, then contract", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"\d{4}_[a-z0-9_]+", cells[0]):
            rows[cells[0]] = cells[2]
    return rows


def test_every_migration_has_its_row_saying_whether_older_hosts_survive_it() -> None:
    files = [f"{m.version:04d}_{m.name}" for m in schema.available()]
    rows = migration_rows()

    missing = [name for name in files if name not in rows]
    assert not missing, f"docs/operations.md, 'Expand, then contract': add a row for {missing}"
    assert list(rows) == files, "one row per migration file, in order, and none other"
    for name, safe in rows.items():
        if name != "0001_initial":
            assert re.match(r"(yes|\*\*no\*\*): ", safe), f"{name}: say 'yes: why' or '**no**: why'"
