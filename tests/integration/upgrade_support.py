"""What the upgrade and restore tests share: the previous release's code taken out of this
repository's history, the `notifyd` command of either release, a webhook posted to a daemon
running as a process, docs/operations.md's snippets made local."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from tests.conftest import WAIT, DaemonProcess, Running
from tests.integration.send_support import OPERATIONS, ROOT, snippet

# "The previous release": the last commit of main before migration 0017 (docs/operations.md,
# "Expand, then contract", says so). Its schema is 0001..0016.
PREVIOUS_RELEASE = "7d4f630a01f868c0ac7ac3cc8dc135c9402e6588"
PREVIOUS_SCHEMA = 16


def previous_release(into: Path) -> Path:
    """The previous release's `notifyd/` package under `into`, from git history; skips the
    test where the history is not there (a shallow clone, an exported tree)."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("no git on PATH: the previous release is taken from git history")
    known = subprocess.run(
        [git, "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if known.returncode != 0:
        pytest.skip(f"no commit {PREVIOUS_RELEASE[:7]} here (shallow clone?): no previous release")
    archive = subprocess.run(
        [git, "-C", str(ROOT), "archive", PREVIOUS_RELEASE, "notifyd"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def notifyd(*args: str, source: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`notifyd ARGS` of this checkout, or of the release whose package is in `source`."""
    env = {**os.environ, "PYTHONPATH": str(source)} if source else None
    return subprocess.run(
        [sys.executable, "-m", "notifyd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=source,
    )


async def post(process: DaemonProcess, source: str, event: dict[str, Any], secret: str) -> int:
    """Post a signed webhook as Running.post does, to a daemon running as a process."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
        running = Running(daemon=cast(Any, None), base_url=process.base_url, session=session)
        status, _ = await running.post(source, event, secret)
        return status


def shell(
    name: str, places: dict[str, str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run docs/operations.md's snippet NAME through /bin/sh, with the doc's paths replaced
    by the test's and this checkout's `notifyd` and the PostgreSQL tools first on PATH."""
    text = snippet(name, OPERATIONS)
    for doc, here in places.items():
        text = text.replace(doc, here)
    return subprocess.run(
        ["/bin/sh", "-c", text],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
