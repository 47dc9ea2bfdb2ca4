"""The install blocks of docs/integrations.md run as an operator runs them, in places of the
test's own: the wheel built from a copy of this checkout, `notifyd send` installed in a
throwaway venv with nothing but `standardwebhooks`, the secret file, Asterisk's scripts.

Off the network: pip is given a wheelhouse (`standardwebhooks` and the build backend
pyproject.toml names, taken once from pip's cache or index) and told to use nothing else,
so the doc's `pip install` lines run as written. The doc's /opt, /etc and /usr/local
prefixes, and its owners (root, asterisk), are replaced by the test's directory and user.
"""

from __future__ import annotations

import grp
import importlib.metadata
import os
import pwd
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.integration.send_support import BIN, ROOT, snippet

# The doc's install prefix and owners, replaced by the test's.
PREFIX = "/opt/notifyd-send"
# Building the wheel once is the slow part (~10 s); every step has a bound.
STEP_SECONDS = 120


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
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        places = {
            PREFIX: str(self.venv),
            "/etc/notifyd": str(self.root / "etc-notifyd"),
            "/usr/local/share/notifyd": str(self.root / "share-notifyd"),
            "/var/spool/notifyd-send": str(self.root / "spool"),
            "-o root -g asterisk": f"-o {user} -g {group}",
            "-o asterisk -g asterisk": f"-o {user} -g {group}",
        }
        for doc, here in places.items():
            text = text.replace(doc, here)
        return text


def shell(script: str, cwd: Path, wheelhouse: Path) -> subprocess.CompletedProcess[str]:
    """A doc block under bash -e, pip limited to the wheelhouse; fails the test on an error."""
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheelhouse),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
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


def fill_wheelhouse(folder: Path) -> Path:
    """The wheels the doc's commands need besides notifyd's own: the `standardwebhooks` this
    environment runs, and the build backend pyproject.toml pins."""
    folder.mkdir(parents=True, exist_ok=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = [
        f"standardwebhooks=={importlib.metadata.version('standardwebhooks')}",
        *project["build-system"]["requires"],
    ]
    ran = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(folder), *wanted],
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    return folder


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
    return {re.sub(r"[-_.]+", "-", name).lower() for name in ran.stdout.split()}
