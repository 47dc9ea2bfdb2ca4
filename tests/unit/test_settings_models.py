"""The settings as pydantic models: built in code like the dataclasses they replace, frozen,
each problem under the TOML table that holds the key, environment overrides checked."""

from __future__ import annotations

import base64
import re
from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

import notifyd.settings
from notifyd.model import QuietHours
from notifyd.settings import (
    DEFAULT_LIFETIMES,
    CallSettings,
    ConfigError,
    DefaultsSettings,
    DeliverySettings,
    Settings,
    Thresholds,
    environment_keys,
    load,
)

SECRET = "whsec_" + base64.b64encode(b"settings-models-secret-0123456789").decode()


def load_text(folder: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    path = folder / "notifyd.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, environ or {})


def problems(
    folder: Path, text: str, environ: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_text(folder, text, environ)
    return caught.value.problems


def test_sections_are_built_in_code_with_keywords_and_their_defaults() -> None:
    defaults = DefaultsSettings(quiet_hours=None)

    assert defaults.quiet_hours is None
    assert defaults.language == "ro"
    assert DefaultsSettings().quiet_hours == QuietHours(time(22, 0), time(8, 0))
    assert CallSettings(voicemail_wait_seconds=90).voicemail_wait_seconds == 90.0
    assert Thresholds(low=Decimal("5"), critical=Decimal("1")).hysteresis == Decimal(0)


def test_sections_are_frozen_and_copied_with_changes() -> None:
    defaults = DefaultsSettings()

    with pytest.raises(ValidationError):
        defaults.language = "en"  # type: ignore[misc]
    changed = defaults.model_copy(update={"language": "en"})

    assert (defaults.language, changed.language) == ("ro", "en")


def test_code_gets_the_same_checks_as_the_file() -> None:
    with pytest.raises(ValidationError, match="must be below low"):
        Thresholds(low=Decimal("1"), critical=Decimal("5"))


def test_a_table_of_tables_is_reported_under_its_own_header(tmp_path: Path) -> None:
    text = (
        '[defaults.modes]\npizza = "daily"\ncalls = "weekly"\n'
        "[delivery.lifetimes]\ncalls = 5\n"
        '[delivery.domain_rates]\n"example.com" = 0\n'
        '[admin.tokens]\nops = "hunter2"\n'
    )

    assert dict(problems(tmp_path, text)) == {
        "[defaults.modes] pizza": (
            "unknown category; known: calls, voicemail, fax, billing, low_credit, statement, "
            "marketing"
        ),
        "[defaults.modes] calls": (
            "must be one of 'immediate', 'hourly', 'daily', 'off', got 'weekly'"
        ),
        "[delivery.lifetimes] calls": "must be seconds between 60 and 5184000",
        "[delivery.domain_rates] example.com": "must be messages per second above 0",
        "[admin.tokens] ops": (
            'must be "sha256:<64 hex digits>", the SHA-256 of the token, never the token'
        ),
    }


def test_a_section_that_is_not_a_table_says_what_it_is(tmp_path: Path) -> None:
    text = 'smtp = 5\nsources = "pbx"\n[thresholds]\nRON = 1\n[defaults]\nmodes = 3\n'

    assert dict(problems(tmp_path, text)) == {
        "[smtp]": "must be a table, got int",
        "[sources]": "must be a table of [sources.<name>] tables",
        "[thresholds.RON]": "must be a table, got int",
        "[defaults] modes": "must be a table, got 3",
    }


def test_the_files_path_is_not_a_key(tmp_path: Path) -> None:
    assert problems(tmp_path, 'path = "/etc/passwd"\n') == [("[path]", "unknown section")]


def test_float_keys_take_integers_but_not_text_or_booleans(tmp_path: Path) -> None:
    settings = load_text(tmp_path, "[calls]\nvoicemail_wait_seconds = 90\n")
    assert settings.calls.voicemail_wait_seconds == 90.0
    assert isinstance(settings.calls.voicemail_wait_seconds, float)

    assert problems(
        tmp_path, '[calls]\nvoicemail_wait_seconds = "90"\nburst_window_seconds = true\n'
    ) == [
        ("[calls] voicemail_wait_seconds", "must be an integer or a number, got '90'"),
        ("[calls] burst_window_seconds", "must be an integer or a number, got True"),
    ]


def test_keys_checked_against_another_are_checked_when_both_are_valid(tmp_path: Path) -> None:
    text = (
        "[database]\npool_min = 5\npool_max = 3\nconnect_timeout_seconds = 0\n"
        "[delivery]\nretry_initial_seconds = 60\nretry_max_seconds = 30\n"
        "[dkim]\nprivate_key_file = 'key.pem'\n"
    )
    (tmp_path / "key.pem").write_text("not read here\n", encoding="utf-8")

    assert dict(problems(tmp_path, text)) == {
        "[database] pool_max": "must be at least pool_min (5), got 3",
        "[database] connect_timeout_seconds": "must be between 0.1 and 120, got 0",
        "[delivery] retry_max_seconds": "must be at least retry_initial_seconds",
        "[dkim] private_key_file": "is set but domain or selector is empty",
    }


def test_lifetimes_in_the_file_change_only_their_categories(tmp_path: Path) -> None:
    settings = load_text(tmp_path, "[delivery.lifetimes]\ncalls = 3600\n")

    assert settings.delivery.lifetimes == {**DEFAULT_LIFETIMES, "calls": 3600.0}
    assert settings.delivery.lifetime("marketing") == DEFAULT_LIFETIMES["marketing"]
    assert DeliverySettings().lifetime("nothing") == DeliverySettings().retry_lifetime_seconds


def test_domain_rates_are_keyed_by_lowercase_domain(tmp_path: Path) -> None:
    settings = load_text(tmp_path, '[delivery.domain_rates]\n"Example.COM" = 5\n')

    assert settings.delivery.domain_rates == {"example.com": 5.0}


def test_the_sources_secrets_are_kept_in_order_and_not_shown(tmp_path: Path) -> None:
    settings = load_text(tmp_path, f'[sources.pbx]\nsecrets = ["{SECRET}"]\n')

    assert settings.sources["pbx"].secrets == (SECRET,)
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "section", "key"),
    [
        ("NOTIFYD_LINK_SECRET", "daemon", "link_secret"),
        ("NOTIFYD_DATABASE_URL", "database", "url"),
        ("NOTIFYD_SMTP_PASSWORD", "smtp", "password"),
    ],
)
def test_each_environment_variable_replaces_its_key(
    tmp_path: Path, variable: str, section: str, key: str
) -> None:
    # Beside the key left empty, as the example file has it: the hand-written loader did not
    # read link_secret when NOTIFYD_LINK_SECRET was set, and refused it as an unknown key.
    value = "postgresql://from-env@db.internal/notifyd"

    settings = load_text(tmp_path, f'[{section}]\n{key} = ""\n', {variable: value})

    # link_secret holds its keys (one here, as the variable has one): the rotation's form.
    expected = (value,) if key == "link_secret" else value
    assert getattr(getattr(settings, section), key) == expected


def test_the_module_documents_every_environment_variable() -> None:
    documented = notifyd.settings.__doc__ or ""

    assert [variable for _, _, variable in environment_keys()] == [
        "NOTIFYD_LINK_SECRET",
        "NOTIFYD_DATABASE_URL",
        "NOTIFYD_SMTP_PASSWORD",
        "NOTIFYD_ERASURE_KEY",
    ]
    for section, key, variable in environment_keys():
        assert re.search(rf"\[{section}\] {key} +{variable}\n", documented), variable


def test_an_environment_value_is_checked_and_named(tmp_path: Path) -> None:
    found = problems(tmp_path, "", {"NOTIFYD_DATABASE_URL": "mysql://db.internal/notifyd"})

    assert found == [
        (
            "[database] url",
            "must be empty (embedded PostgreSQL) or a postgresql:// URL"
            " (from NOTIFYD_DATABASE_URL)",
        )
    ]
