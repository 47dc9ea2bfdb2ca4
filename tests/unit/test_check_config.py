"""`notifyd check-config`: a file that works but is not ready for subscribers is warned
about (exit 0), and `--strict` refuses it (exit 78)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest

from notifyd.cli import main
from tests.conftest import write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "notifyd.example.toml"
RANDOM_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


SHARED_DATABASE = "postgresql://db.internal/notifyd"


def _ready(tmp_path: Path, **changes: dict[str, object]) -> Path:
    sections: dict[str, dict[str, object]] = {
        "http": {"public_url": "https://notices.voip.example"},
        "sources.pbx": {"secrets": [RANDOM_SECRET]},
    }
    for section, values in changes.items():
        sections.setdefault(section.replace("__", "."), {}).update(values)
    return write_config(tmp_path / "notifyd.toml", sections)


def test_the_examples_placeholders_are_warned_about_and_strict_refuses_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config", "--config", str(EXAMPLE)]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.splitlines()
    assert all(line.startswith(f"{EXAMPLE}: warning: ") for line in warnings)
    assert len(warnings) == 3
    assert "[sources.pbx] secrets[0]: is the example config's placeholder" in warnings[1]
    assert "[sources.billing] secrets[0]: is the example config's placeholder" in warnings[2]
    assert "[http] public_url: is empty" in warnings[0]
    assert "http://127.0.0.1:8080" in warnings[0]
    assert "ok" in captured.out

    assert main(["check-config", "--strict", "--config", str(EXAMPLE)]) == 78
    strict = capsys.readouterr()
    assert strict.err.splitlines() == warnings
    assert strict.out == ""


def test_a_ready_config_has_no_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--strict", "--config", str(_ready(tmp_path))]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.endswith(": ok (1 sources)\n")


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        # A readable phrase is typed, not random: 24 random bytes are all printable once in
        # twenty billion.
        (
            {
                "sources.pbx": {
                    "secrets": ["whsec_" + base64.b64encode(b"our-pbx-key-2026-xyz!").decode()]
                }
            },
            "[sources.pbx] secrets[0]",
        ),
        (
            {"sources.pbx": {"secrets": ["whsec_" + base64.b64encode(os.urandom(18)).decode()]}},
            "[sources.pbx] secrets[0]",
        ),
        ({"daemon": {"link_secret": "changeme"}}, "[daemon] link_secret"),
        # Rotation: each key is checked, and named by its place.
        ({"daemon": {"link_secret": [RANDOM_SECRET, "changeme"]}}, "[daemon] link_secret[1]"),
        # A database other hosts may share, and no key: each host would seal links, and
        # hash erased addresses, with its own.
        (
            {"database": {"url": SHARED_DATABASE}, "privacy": {"erasure_key": RANDOM_SECRET}},
            "[daemon] link_secret",
        ),
        (
            {"database": {"url": SHARED_DATABASE}, "daemon": {"link_secret": RANDOM_SECRET}},
            "[privacy] erasure_key",
        ),
        ({"http": {"public_url": ""}}, "[http] public_url"),
        ({"http": {"public_url": "http://localhost:8080"}}, "[http] public_url"),
        # The admin API and /metrics where more than this host reaches them, and a proxy list
        # that believes every client's word on its own address.
        ({"http__admin": {"shared": True}}, "[http.admin] shared"),
        ({"http__admin": {"host": "0.0.0.0"}}, "[http.admin] host"),
        ({"http": {"trusted_proxies": ["10.0.0.1", "::/0"]}}, "[http] trusted_proxies"),
        # docs/admin-api.md's example digest is the SHA-256 of "test".
        (
            {
                "admin__tokens__ops": {
                    "digest": "sha256:" + hashlib.sha256(b"test").hexdigest(),
                    "scopes": ["read"],
                }
            },
            "[admin.tokens.ops] digest",
        ),
        # The old form still works, with every scope: the admin is told to narrow it.
        (
            {"admin__tokens": {"ops": "sha256:" + hashlib.sha256(os.urandom(8)).hexdigest()}},
            "[admin.tokens] ops",
        ),
    ],
)
def test_each_weak_or_placeholder_value_is_one_warning_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, dict[str, object]],
    key: str,
) -> None:
    path = _ready(tmp_path, **changes)
    assert main(["check-config", "--config", str(path)]) == 0
    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}: warning: {key}: ")
    assert main(["check-config", "--strict", "--config", str(path)]) == 78


def test_warnings_never_print_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    main(["check-config", "--config", str(EXAMPLE)])
    err = capsys.readouterr().err
    assert "whsec_" not in err
    assert "UkVQTEFDRS1NRT" not in err


def test_hosts_that_would_each_generate_a_link_key_are_told_what_breaks_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database several hosts may share and no [daemon] link_secret: each host would seal
    links with a key of its own (state_dir/link-secret) and refuse the others'. The warning
    says so and names the fix; the same key configured on every host silences it, and so
    does the embedded database (one host: test_a_ready_config_has_no_warnings)."""
    shared: dict[str, dict[str, object]] = {
        "database": {"url": SHARED_DATABASE},
        "privacy": {"erasure_key": RANDOM_SECRET},
    }
    path = _ready(tmp_path, **shared)
    assert main(["check-config", "--config", str(path)]) == 0
    (warning,) = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"{path}: warning: [daemon] link_secret: is empty: ")
    assert "state_dir/link-secret" in warning
    assert "refuse each other's links" in warning
    assert warning.endswith("Configure the same key on every host")
    keyed = _ready(tmp_path, daemon={"link_secret": RANDOM_SECRET}, **shared)
    assert main(["check-config", "--strict", "--config", str(keyed)]) == 0
    assert capsys.readouterr().err == ""
