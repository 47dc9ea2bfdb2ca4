"""`notifyd preview`: every event type renders from sample data, without a database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from notifyd.catalogue.events import CATALOGUE
from notifyd.catalogue.samples import NOTICE_KINDS
from notifyd.cli import main


@pytest.mark.parametrize("language", ["ro", "en"])
@pytest.mark.parametrize("name", sorted({*CATALOGUE, *NOTICE_KINDS}))
def test_every_event_type_and_kind_previews_in_both_languages(
    name: str, language: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["preview", name, "--lang", language]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Subject: ")
    assert "\nDigest line: " in out
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d", out)  # times are formatted, never raw


def test_html_preview_prints_the_html_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "call.missed", "--lang", "en", "--html"]) == 0
    out = capsys.readouterr().out
    assert out.lstrip().startswith("<!DOCTYPE html>")
    assert "+40 721 555 123" in out


def test_preview_uses_the_config_template_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "fax.sent.en.txt").write_text(
        "{% set subject %}Our fax went to {{ data.remote_number | phone }}{% endset %}"
        "{% set line %}fax{% endset %}Sent.\n"
    )
    config = tmp_path / "notifyd.toml"
    config.write_text(f'[templates]\nfolder = "{folder}"\n')

    assert main(["preview", "fax.sent", "--lang", "en", "--config", str(config)]) == 0
    assert "Subject: Our fax went to +40 21 555 0199" in capsys.readouterr().out


def test_unknown_type_is_refused_with_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "pizza.ordered"]) == 2
    assert "voicemail.received" in capsys.readouterr().err


def test_a_closed_pipe_ends_the_preview_quietly_with_the_sigpipe_status() -> None:
    # `notifyd preview ... | head`: the reader is gone before the preview writes.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "notifyd", "preview", "voicemail.received", "--html"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 128 + signal.SIGPIPE  # what a shell reports for `cat | head`
