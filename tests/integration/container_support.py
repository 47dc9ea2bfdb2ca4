"""What tests/integration/test_container.py reads and runs: the Dockerfile by stage,
compose.yaml's services, and a container engine (Docker's CLI) when one answers, with every
call bounded; without one, the tests that need it skip and say why."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.send_support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
# Building the image downloads and installs every dependency: minutes, not seconds.
BUILD_SECONDS = 900
# The docker CLI by its full path (where none is installed, the tests skip before using it).
DOCKER = shutil.which("docker") or "/usr/bin/docker"
# The image's start period is 60 s; its health check every 10 s after.
HEALTHY_SECONDS = 180


@dataclass
class Stage:
    """One FROM of the Dockerfile and its instructions (continued lines joined)."""

    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, name: str) -> list[str]:
        return [arguments for keyword, arguments in self.instructions if keyword == name]


def stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found: list[Stage] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, arguments = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            found.append(Stage(arguments.split()[0]))
        else:
            found[-1].instructions.append((keyword.upper(), " ".join(arguments.split())))
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def docker(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The docker CLI; fails the test on an error."""
    ran = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert ran.returncode == 0, f"docker {' '.join(args)}\n{ran.stdout}\n{ran.stderr}"
    return ran


def engine_or_skip(*, compose_too: bool = False) -> None:
    """Skips, saying why, unless a container engine answers (and its compose plugin)."""
    if not Path(DOCKER).exists():
        pytest.skip("no container engine: the `docker` command is not installed")
    info = subprocess.run([DOCKER, "info"], capture_output=True, text=True, timeout=30, check=False)
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        pytest.skip(f"no container engine: `docker info` failed ({last})")
    if compose_too:
        version = subprocess.run(
            [DOCKER, "compose", "version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if version.returncode != 0:
            pytest.skip("no `docker compose` (the compose plugin is not installed)")


def wait_healthy(container: str) -> None:
    """Until the engine reports the container's health check passing; fails on `unhealthy`."""
    deadline = time.monotonic() + HEALTHY_SECONDS
    status = ""
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)
        status = state.get("Health", {}).get("Status", "")
        assert status != "unhealthy", docker("logs", container)
        assert state["Status"] != "exited", docker("logs", container)
        if status == "healthy":
            return
        time.sleep(2)
    raise AssertionError(f"{container} still {status!r} after {HEALTHY_SECONDS} s")


def mailpit_messages(base_url: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    """Mailpit's list of messages once it holds `count`, through its HTTP API."""
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base_url}/api/v1/messages", timeout=5) as answer:  # noqa: S310
            messages = json.load(answer)["messages"]
        if len(messages) >= count:
            return messages
        time.sleep(1)
    raise AssertionError(f"Mailpit holds {len(messages)} messages, not {count}")


def docker_shell(script: str, env: dict[str, str] | None = None) -> str:
    """A doc block of docker commands under bash -e, in the checkout; its output."""
    ran = subprocess.run(
        ["/bin/bash", "-e", "-c", script],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )
    assert ran.returncode == 0, f"{script}\n{ran.stdout}\n{ran.stderr}"
    return ran.stdout


def docker_cleanup(*calls: list[str]) -> None:
    """Removes what a test made, whatever is left of it (errors ignored)."""
    for call in calls:
        subprocess.run([DOCKER, *call], capture_output=True, timeout=120, check=False)
