"""Every fenced block of docs/integrations.md and docs/operations.md is a marked snippet that
some test reads, so a block added to a guide without a test fails here; the blocks no daemon
is needed for are checked here too: every TOML block of both loads with notifyd's config
loader (a misspelt key fails: the settings forbid extras), the [callbacks] block shows the
real defaults, the Postfix lines are contrib/postfix's files, and Postfix itself parses them
where installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from notifyd.settings import load
from notifyd.settings.delivery import CallbackSenderSettings
from tests.conftest import base_config, write_config
from tests.integration.doc_support import (
    DOCS,
    PASSWORD,
    blocks,
    filled,
    merged,
    with_files,
)
from tests.integration.send_support import ROOT, snippet
from tests.integration.sendgrid_support import new_key, public_text

TOML = [
    pytest.param(doc, block.name, id=f"{doc.stem}:{block.name}")
    for doc in DOCS
    for block in blocks(doc)
    if block.language == "toml"
]
BY_DOC = pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])


@BY_DOC
def test_every_block_of_the_doc_is_a_marked_snippet(doc: Path) -> None:
    unmarked = [block.line for block in blocks(doc) if block.name is None]
    assert unmarked == [], (
        f"docs/{doc.name} lines {unmarked}: a fenced block without a"
        " `<!-- snippet: NAME -->` line before it; mark it and exercise it in a test"
    )
    names = [block.name for block in blocks(doc)]
    assert len(names) == len(set(names)), names


@BY_DOC
def test_every_snippet_is_read_by_a_test(doc: Path) -> None:
    tests = "\n".join(path.read_text("utf-8") for path in (ROOT / "tests").rglob("*.py"))
    unread = [
        block.name
        for block in blocks(doc)
        if f'"{block.name}"' not in tests and f"snippet: {block.name}" not in tests
    ]
    assert unread == [], f"snippets of docs/{doc.name} no test reads: {unread}"


@pytest.mark.parametrize(("doc", "name"), TOML)
def test_every_toml_block_loads_with_the_config_loader(
    tmp_path: Path, doc: Path, name: str
) -> None:
    secret_file = tmp_path / "callback.secret"
    secret_file.write_text("whsec_" + "Y2FsbGJhY2stc2VjcmV0LWZvci10aGUtZG9jLXRlc3Q=\n")
    text = filled(snippet(name, doc), secret_file, public_keys=public_text(new_key()))
    text = with_files(text, tmp_path)
    config = merged(base_config(tmp_path, "postgresql://unused/db", None), text)
    # A variable a comment of the block says to set ("the password from the environment").
    environ = {variable: PASSWORD for variable in re.findall(r"#.*\b(NOTIFYD_\w+)", text)}
    settings = load(write_config(tmp_path / "notifyd.toml", config), environ)
    if name == "callbacks-defaults":  # "defaults shown": the doc's values are the model's
        assert settings.callbacks == CallbackSenderSettings()


def postfix_files() -> dict[str, list[str]]:
    """The doc's Postfix block, by the file each of its parts goes to."""
    parts: dict[str, list[str]] = {}
    current = ""
    for line in snippet("postfix-lines").splitlines():
        if line.startswith("# "):
            current = line.removeprefix("# ")
        else:
            parts.setdefault(current, []).append(line)
    return parts


def test_the_postfix_lines_are_contrib_postfix_files() -> None:
    # The pipe script's tests (test_bounce_reports.py) run contrib/postfix/master.cf's argv.
    parts = postfix_files()
    assert sorted(parts) == ["main.cf", "master.cf", "transport"]
    for name, lines in parts.items():
        text = (ROOT / "contrib" / "postfix" / name).read_text("utf-8")
        assert [line for line in text.splitlines() if not line.startswith("#")] == lines, name


def test_postfix_parses_the_lines_and_builds_the_transport_map(tmp_path: Path) -> None:
    if not (shutil.which("postconf") and shutil.which("postmap")):
        pytest.skip("Postfix is not installed (`make postfix` installs Debian's where it can)")
    for name, lines in postfix_files().items():
        text = "\n".join(lines) + "\n"
        (tmp_path / name).write_text(text.replace("/etc/postfix/transport", str(tmp_path / name)))

    def postfix(*argv: str) -> str:
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        assert ran.returncode == 0, (argv, ran.stderr)
        assert "warning" not in ran.stderr, (argv, ran.stderr)
        return ran.stdout

    postfix("postconf", "-c", str(tmp_path), "-n")  # warns of a parameter it does not know
    service = postfix("postconf", "-c", str(tmp_path), "-M", "notifyd-bounce/unix")
    assert "argv=/usr/local/bin/notifyd-bounce" in service, service
    limit = postfix(
        "postconf", "-c", str(tmp_path), "-h", "notifyd-bounce_destination_recipient_limit"
    )
    assert limit.strip() == "1"
    postfix("postmap", "-c", str(tmp_path), f"hash:{tmp_path / 'transport'}")
    found = postfix(
        "postmap",
        "-c",
        str(tmp_path),
        "-q",
        "bounces.example.com",
        f"hash:{tmp_path / 'transport'}",
    )
    assert found.strip() == "notifyd-bounce:"
