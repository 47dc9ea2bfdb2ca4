"""The named queries: a query gets the parts of sql/parts.sql it names."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from notifyd.storage import queries


def test_a_query_gets_the_parts_it_names_and_an_unknown_part_fails_at_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files: dict[str, Mapping[str, str]] = {
        "parts": {"columns": "a, b"},
        "family": {"query": "SELECT {{columns}} FROM t", "wrong": "SELECT {{nothing}}"},
    }
    monkeypatch.setattr(queries, "_read", files.__getitem__)
    with pytest.raises(ValueError, match="no part 'nothing'"):
        queries.load("family")
    files["family"] = {"query": "SELECT {{columns}} FROM t", "json": "SELECT '{}'::jsonb"}
    assert queries.load("family") == {"query": "SELECT a, b FROM t", "json": "SELECT '{}'::jsonb"}


def test_every_family_loads_with_its_parts() -> None:
    for family in ("notices", "waves"):
        assert not any("{{" in query for query in queries.load(family).values())
