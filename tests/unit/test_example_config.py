"""config/notifyd.example.toml shows every key with its default, written from the settings
models (notifyd/settings/example.py): the file cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from notifyd.settings import Settings, environment_keys, load
from notifyd.settings.example import BEGIN, END, render, replace_block

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "notifyd.example.toml"
STALE = f"{EXAMPLE.name} is not what the settings models say: run `make example-config`"


def test_the_example_configs_block_is_current() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")

    assert BEGIN in text
    assert END in text
    assert replace_block(text, render()) == text, STALE


def test_the_block_holds_every_default(tmp_path: Path) -> None:
    # Fields with `examples` show a value to deploy with (state_dir, sender, ...) instead.
    block = tmp_path / "block.toml"
    block.write_text(render(), encoding="utf-8")
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")

    written, defaults = load(block, {}), load(empty, {})

    for name, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue  # the file's path, and the tables without a default ([sources.<name>], ...)
        for key, field in model.model_fields.items():
            if not field.examples:
                shown, default = getattr(written, name), getattr(defaults, name)
                assert getattr(shown, key) == getattr(default, key), f"[{name}] {key}"


def test_the_header_names_every_environment_variable() -> None:
    header = EXAMPLE.read_text(encoding="utf-8").split(BEGIN)[0]

    for section, key, variable in environment_keys():
        assert re.search(rf"{variable} +\[{section}\] {key}\n", header), variable
