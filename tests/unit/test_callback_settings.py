"""[sources.<name>.callback] (issue 19): a URL and a secret of its own, given once (in the
file or in a file of its own), checked like the sources' secrets; [callbacks] defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from notifyd.settings import ConfigError, Settings, callback_sources, from_mapping
from tests.conftest import BILLING_SECRET, PBX_SECRET
from tests.integration.callbacks_support import CALLBACK_SECRET


def settings(tmp_path: Path, callback: dict[str, Any] | None) -> Settings:
    pbx: dict[str, Any] = {"secrets": [PBX_SECRET]}
    if callback is not None:
        pbx["callback"] = callback
    sources = {"pbx": pbx, "billing": {"secrets": [BILLING_SECRET]}}
    return from_mapping({"sources": sources}, tmp_path / "notifyd.toml", {})


def problems(tmp_path: Path, callback: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as error:
        settings(tmp_path, callback)
    return error.value.problems


def test_a_source_with_a_callback_is_told_and_its_secret_is_not_shown(tmp_path: Path) -> None:
    loaded = settings(tmp_path, {"url": "https://pbx.example/cb", "secret": CALLBACK_SECRET})
    assert callback_sources(loaded) == ("pbx",)
    assert callback_sources(settings(tmp_path, None)) == ()
    assert CALLBACK_SECRET not in repr(loaded)
    assert "pbx.example" not in repr(loaded)


def test_the_secret_may_come_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "callback.secret"
    secret_file.write_text(CALLBACK_SECRET + "\n")
    loaded = settings(tmp_path, {"url": "https://pbx.example/cb", "secret_file": "callback.secret"})
    callback = loaded.sources["pbx"].callback
    assert callback is not None
    assert callback.secret == CALLBACK_SECRET


def test_a_callback_needs_one_good_secret_and_a_web_url(tmp_path: Path) -> None:
    secret_file = tmp_path / "bad.secret"
    secret_file.write_text("not-a-secret")
    url = "https://pbx.example/cb"
    assert "needs secret or secret_file" in str(problems(tmp_path, {"url": url}))
    both = {"url": url, "secret": CALLBACK_SECRET, "secret_file": str(secret_file)}
    assert "not both" in str(problems(tmp_path, both))
    assert "must start with 'whsec_'" in str(
        problems(tmp_path, {"url": url, "secret_file": str(secret_file)})
    )
    assert "must be an http(s) URL" in str(
        problems(tmp_path, {"url": "ftp://pbx.example", "secret": CALLBACK_SECRET})
    )
