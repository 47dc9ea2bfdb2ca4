"""The install blocks of docs/integrations.md and docs/operations.md run as an operator runs
them, in places of the test's own: the wheel built from a copy of this checkout, `notifyd
send` installed in a throwaway venv with nothing but `standardwebhooks`, the secret file,
Asterisk's scripts; the daemon's /opt/notifyd/.venv, /etc/notifyd and state folder that
systemd/notifyd.service names (test_install_guide.py).

Off the network: pip is given a wheelhouse (`standardwebhooks` and the build backend
pyproject.toml names, taken once from pip's cache or index) and told to use nothing else,
so the doc's `pip install` lines run as written (the daemon's install also gets every
package of requirements/run.txt; where pip can neither find them in its cache nor reach its
index, those tests skip and say so). The doc's /opt, /etc, /var and /usr/local prefixes, and
its owners (root, asterisk, notifyd), are replaced by the test's directory and user.
"""

from __future__ import annotations

import grp
import importlib.metadata
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.send_support import BIN, OPERATIONS, ROOT, snippet

LOCKED = ROOT / "requirements" / "run.txt"

# The doc's install prefix and owners, replaced by the test's.
PREFIX = "/opt/notifyd-send"
# Building the wheel once is the slow part (~10 s); every step has a bound.
# A bound, not a measure: an install takes ~60 s alone, 2-3x that beside a loaded suite.
STEP_SECONDS = 300


@dataclass(frozen=True)
class Host:
    """A PBX host as the doc leaves it: the venv, and the checkout the doc's commands ran in."""

    root: Path
    venv: Path
    checkout: Path
    wheelhouse: Path

    @property
    def notifyd(self) -> str:
        return str(self.venv / "bin" / "notifyd")

    def place(self, text: str) -> str:
        """A doc block with the test's prefix, folders and owners."""
        places = {
            PREFIX: str(self.venv),
            "/etc/notifyd": str(self.root / "etc-notifyd"),
            "/usr/local/share/notifyd": str(self.root / "share-notifyd"),
            "/var/spool/notifyd-send": str(self.root / "spool"),
        }
        return localized(text, places, ["root", "asterisk"])


def localized(text: str, places: dict[str, str], owners: list[str]) -> str:
    """`text` with each of `places` replaced, and `-o OWNER -g OWNER` for any two of `owners`
    by the test's own user and group (the test can chown to nobody else)."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    for doc, here in places.items():
        text = text.replace(doc, here)
    for owner in owners:
        for owning_group in owners:
            text = text.replace(f"-o {owner} -g {owning_group}", f"-o {user} -g {group}")
    return text


def shell(script: str, cwd: Path, wheelhouse: Path) -> subprocess.CompletedProcess[str]:
    """A doc block under bash -e, pip limited to the wheelhouse; fails the test on an error."""
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # No .pyc at install: a third of the install's time, and notifyd compiles what
        # it imports at its first start anyway.
        "PIP_NO_COMPILE": "1",
    }
    ran = subprocess.run(
        ["/bin/bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )
    assert ran.returncode == 0, f"{script}\n{ran.stdout}\n{ran.stderr}"
    return ran


def fill_wheelhouse(folder: Path, *, locked: bool = False) -> Path:
    """The wheels the doc's commands need besides notifyd's own: the `standardwebhooks` this
    environment runs, and the build backend pyproject.toml pins. `locked`: also every
    package of requirements/run.txt (hashes checked), and `wheel`, which pip's build of a
    package published as source only (dkimpy) needs."""
    folder.mkdir(parents=True, exist_ok=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = [
        f"standardwebhooks=={importlib.metadata.version('standardwebhooks')}",
        *project["build-system"]["requires"],
    ]
    _download(folder, wanted)
    if locked:
        _download(folder, ["wheel"])
        _download(folder, ["--require-hashes", "-r", str(LOCKED)])
    return folder


def _download(folder: Path, wanted: list[str]) -> None:
    """pip download, from its cache (filled by `make install`) or its index."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(folder)]
    ran = subprocess.run(
        [*command, *wanted],
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS * 2,
        check=False,
    )
    if ran.returncode != 0 and not _online():
        pytest.skip(f"pip could not get {wanted} from its cache and pypi.org is out of reach")
    assert ran.returncode == 0, ran.stderr


def _online() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


def checkout_copy(folder: Path) -> Path:
    """This repository's files as a fresh clone has them (what setuptools builds from)."""
    skipped = shutil.ignore_patterns(
        ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(ROOT, folder, ignore=skipped)
    return folder


def install_pbx_host(root: Path) -> Host:
    """The doc's "Installing on a PBX or billing host" block, run in a copy of the checkout."""
    host = Host(
        root=root,
        venv=root / "opt" / "notifyd-send",
        checkout=checkout_copy(root / "checkout"),
        wheelhouse=fill_wheelhouse(root / "wheelhouse"),
    )
    ran = shell(host.place(snippet("install-send")), host.checkout, host.wheelhouse)
    assert "--secret-file" in ran.stdout, ran.stdout
    return host


def distributions(host: Host) -> set[str]:
    """The distributions installed in the host's venv (read from outside any checkout)."""
    code = "import importlib.metadata as m; print(*{d.metadata['Name'] for d in m.distributions()})"
    ran = subprocess.run(
        [str(host.venv / "bin" / "python"), "-c", code],
        cwd=host.root,
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=True,
    )
    return {normalized(name) for name in ran.stdout.split()}


# The guide's folders for the daemon (docs/operations.md, "On a host with systemd"), as
# systemd/notifyd.service names them; the test's stand-in for each under its directory.
SERVER_PLACES = {
    "/opt/notifyd": "opt-notifyd",
    "/etc/notifyd": "etc-notifyd",
    "/var/lib/notifyd": "var-lib-notifyd",
    "/etc/systemd/system": "etc-systemd-system",
}
# The blocks that make the install, in the guide's order (the others need root and systemd).
SERVER_SNIPPETS = ["install-build", "install-venv", "install-config", "install-unit"]


@dataclass(frozen=True)
class ServerHost:
    """A host the guide installed the daemon on: its folders, and what each block printed."""

    root: Path
    checkout: Path
    wheelhouse: Path
    printed: dict[str, str]

    def place(self, text: str) -> str:
        """A doc block (or the unit's text) with the test's folders and owners."""
        places = {doc: str(self.root / here) for doc, here in SERVER_PLACES.items()}
        return localized(text, places, ["root", "notifyd"])

    @property
    def wheel(self) -> Path:
        (found,) = (self.checkout / "dist").glob("notifyd-*.whl")
        return found


def install_server_host(root: Path) -> ServerHost:
    """docs/operations.md's install blocks, run in a copy of the checkout; the secrets file
    filled in with the guide's lines, as the operator edits it."""
    host = ServerHost(
        root=root,
        checkout=checkout_copy(root / "checkout"),
        wheelhouse=fill_wheelhouse(root / "wheelhouse", locked=True),
        printed={},
    )
    # A host with systemd has its folder of units already.
    Path(host.place("/etc/systemd/system")).mkdir(parents=True)
    for name in SERVER_SNIPPETS:
        script = host.place(snippet(name, OPERATIONS))
        host.printed[name] = shell(script, host.checkout, host.wheelhouse).stdout
        if name == "install-config":
            secrets = Path(host.place("/etc/notifyd/secrets.env"))
            secrets.write_text(snippet("install-secrets", OPERATIONS), encoding="utf-8")
    return host


def unit_entries(text: str) -> list[tuple[str, str]]:
    """The `Key=value` lines of a systemd unit, in order (a key may come more than once)."""
    entries = []
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            entries.append((key.strip(), value.strip()))
    return entries


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_pins() -> set[tuple[str, str]]:
    """requirements/run.txt's (name, version) pairs."""
    text = LOCKED.read_text(encoding="utf-8")
    return {(normalized(n), v) for n, v in re.findall(r"^([\w.-]+)==(\S+)", text, re.M)}


def resolved(host: ServerHost, requirement: str) -> set[tuple[str, str]]:
    """What pip would install for `requirement` into an empty environment (the guide's venv's
    pip, from the wheelhouse, nothing installed: `--dry-run --ignore-installed`)."""
    report = host.root / "resolved.json"
    pip = host.place("/opt/notifyd/.venv/bin/pip")
    argv = f"{pip} install --quiet --dry-run --ignore-installed --report {report}"
    shell(f"{argv} '{requirement}'", host.checkout, host.wheelhouse)
    found = json.loads(report.read_text(encoding="utf-8"))["install"]
    return {(normalized(i["metadata"]["name"]), i["metadata"]["version"]) for i in found}


# Runs notifyd with some distributions' modules unimportable (None in sys.modules).
_WITHOUT = """
import importlib.metadata, sys
for name in sys.argv[1].split():
    for file in importlib.metadata.distribution(name).files or []:
        top = file.parts[0].removesuffix(".py")
        if not top.startswith(("..", "__")) and not top.endswith((".dist-info", ".data")):
            sys.modules[top] = None
sys.argv = ["notifyd", *sys.argv[2:]]
from notifyd.command import main
sys.exit(main())
"""


def notifyd_without(
    host: ServerHost, distributions: set[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """`notifyd ARGS` from the guide's venv as if `distributions` were not installed."""
    python = host.place("/opt/notifyd/.venv/bin/python")
    return subprocess.run(
        [python, "-c", _WITHOUT, " ".join(sorted(distributions)), *args],
        cwd=host.root,
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )
