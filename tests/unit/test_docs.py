"""Documentation generated from the code stays in step with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_events_md_matches_the_catalogue_and_templates() -> None:
    spec = importlib.util.spec_from_file_location("events_table", DOCS / "events_table.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    expected = module.table()

    assert (DOCS / "events.md").read_text(encoding="utf-8") == expected, (
        "docs/events.md is out of date: .venv/bin/python docs/events_table.py > docs/events.md"
    )
