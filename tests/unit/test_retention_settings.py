"""[retention]: its defaults (SPEC §2), its limits, the key it took over from [attachments],
and the free-text fields that the purge's SQL and index name as the catalogue does."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from notifyd.catalogue.events import CATALOGUE, FREE_TEXT_FIELDS
from notifyd.settings import ConfigError, Settings, from_mapping
from notifyd.storage import queries

PATH = Path("/etc/notifyd/notifyd.toml")


def settings(**tables: dict[str, Any]) -> Settings:
    return from_mapping(tables, PATH, {})


def test_the_defaults_are_the_promises_of_spec_2() -> None:
    kept = settings().retention
    assert (kept.notice_days, kept.billing_days, kept.closed_account_days) == (365, 2555, 1095)
    assert kept.payload_days == 30


def test_the_old_attachments_key_still_sets_the_payload_days() -> None:
    assert settings(attachments={"keep_days": 3}).retention.payload_days == 3
    with pytest.raises(ConfigError) as both:
        settings(attachments={"keep_days": 3}, retention={"payload_days": 4})
    assert both.value.problems == [
        ("[attachments] keep_days", "moved to [retention] payload_days: set only that")
    ]


def test_billing_notices_are_not_kept_shorter_than_the_others() -> None:
    with pytest.raises(ConfigError) as shorter:
        settings(retention={"notice_days": 400, "billing_days": 399})
    assert shorter.value.problems == [("[retention] billing_days", "must be at least notice_days")]


def test_the_free_text_fields_are_the_catalogues_and_the_sqls() -> None:
    every_field = {name for model in CATALOGUE.values() for name in model.model_fields}
    assert set(FREE_TEXT_FIELDS) <= every_field
    listed = "{" + ",".join(FREE_TEXT_FIELDS) + "}"
    strip = queries.load("events")["strip_free_text"]
    migration = (
        resources.files("notifyd.storage.migrations").joinpath("0013_retention.sql").read_text()
    )
    # The query must write the index's predicate as the index does, or PostgreSQL reads
    # every old event instead.
    assert re.findall(r"'(\{[a-z_,]+\})'::text\[\]", strip) == [listed, listed]
    assert re.findall(r"'(\{[a-z_,]+\})'::text\[\]", migration) == [listed]
