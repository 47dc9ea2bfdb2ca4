"""The container image (Dockerfile) and compose.yaml: what they promise, read from the files
on every run (a non-root user, a health check, no build tools in the final stage, a
read-only root filesystem with the state and /tmp writable, the config where notifyd reads
it, PostgreSQL healthy before notifyd starts); and, where a container engine answers, the
image built and its health check green, and the compose stack delivering a simulated event
to its mail catcher (docs/operations.md, "A container", run as written). Without an engine
those two skip and say why (tests/integration/container_support.py)."""

from __future__ import annotations

import re
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from notifyd.catalogue.samples import sample_event
from notifyd.cli import DEFAULT_CONFIG
from notifyd.settings import load
from tests.conftest import base_config, write_config
from tests.integration.container_support import (
    DOCKERFILE,
    compose,
    docker,
    docker_cleanup,
    docker_shell,
    engine_or_skip,
    mailpit_messages,
    stages,
    wait_healthy,
)
from tests.integration.send_support import OPERATIONS, ROOT, snippet

HEALTHZ = "http://127.0.0.1:8080/healthz"


def final_stage_text() -> str:
    return "\n".join(f"{k} {v}" for k, v in stages()[-1].instructions)


def notifyd_service() -> dict[str, object]:
    service: dict[str, object] = compose()["services"]["notifyd"]
    return service


def compose_config() -> Path:
    """The host file compose.yaml mounts where notifyd reads its config."""
    volumes = notifyd_service()["volumes"]
    assert isinstance(volumes, list)
    (mount,) = [str(v) for v in volumes if str(v).split(":")[1] == DEFAULT_CONFIG]
    assert mount.endswith(":ro"), mount
    return ROOT / mount.split(":")[0]


def test_the_final_stage_is_slim_runs_unprivileged_and_checks_its_health() -> None:
    build, final = stages()
    assert build.base == final.base == "python:3.11-slim"
    (user,) = final.all("USER")
    assert user.split(":")[0] not in ("root", "0"), user
    (healthcheck,) = final.all("HEALTHCHECK")
    assert "urllib.request" in healthcheck
    assert HEALTHZ in healthcheck
    assert final.all("ENTRYPOINT") == ['["notifyd"]']
    assert final.all("CMD") == [f'["run", "--config", "{DEFAULT_CONFIG}"]']


def test_no_build_tools_reach_the_final_stage() -> None:
    text = final_stage_text()
    for tool in ("gcc", "build-essential", "apt-get", "curl", "COPY . "):
        assert tool not in text, tool
    # Only the wheels the build stage made, mounted for the install and not copied.
    (install,) = [r for r in stages()[-1].all("RUN") if "pip install" in r]
    assert "--mount=type=bind,from=build" in install
    assert "--no-index" in install


def test_compose_runs_notifyd_read_only_with_the_state_and_tmp_writable() -> None:
    service = notifyd_service()
    assert service["read_only"] is True
    assert service["tmpfs"] == ["/tmp"]  # noqa: S108 (the container's own, not this host's)
    assert service["cap_drop"] == ["ALL"]
    state_dir = str(load(compose_config(), {}).daemon.state_dir)
    assert f'VOLUME ["{state_dir}"]' in final_stage_text()
    volumes = service["volumes"]
    assert isinstance(volumes, list)
    assert f"state:{state_dir}" in volumes


def test_the_compose_config_points_at_its_neighbours_and_the_health_check() -> None:
    services = compose()["services"]
    url = services["notifyd"]["environment"]["NOTIFYD_DATABASE_URL"]
    settings = load(compose_config(), {"NOTIFYD_DATABASE_URL": url})
    assert urlsplit(settings.database.url).hostname in services
    assert settings.smtp.host == "mailpit"
    assert settings.smtp.port == 1025
    assert services["postgres"]["image"] == "postgres:16"
    # Listening where the health checks (the image's and compose's) and the port look.
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", 8080)
    assert HEALTHZ in " ".join(services["notifyd"]["healthcheck"]["test"])
    assert services["notifyd"]["ports"][0].endswith(f":{settings.http.port}")
    # notifyd migrates at start: PostgreSQL must accept connections first.
    assert services["notifyd"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_the_guide_runs_the_image_as_it_is_built() -> None:
    run = snippet("container-run", OPERATIONS)
    assert "--read-only --tmpfs /tmp" in run
    assert f"{DEFAULT_CONFIG}:{DEFAULT_CONFIG}:ro" in run
    state_dir = str(load(compose_config(), {}).daemon.state_dir)
    assert f"notifyd-state:{state_dir}" in run


def test_the_guides_commands_name_the_image_ports_and_services_there_are() -> None:
    # What the two blocks name, held to the files without an engine (the runs below skip
    # without one): the image built is the one run and inspected, from this Dockerfile, on
    # the port it exposes; the compose service exec'd into, the event it simulates, the
    # mail catcher's port the guide sends the reader to.
    run = snippet("container-run", OPERATIONS)
    (build,) = [line for line in run.splitlines() if line.startswith("docker build ")]
    tag = build.split("-t ", 1)[1].split()[0]
    assert build.endswith(" .")
    assert DOCKERFILE.is_file()
    assert run.count(f" {tag}\n") == 2, run  # `docker run … TAG` and `inspect … TAG`
    (ports,) = re.findall(r"-p (\d+):(\d+)", run)
    assert stages()[-1].all("EXPOSE") == [ports[1]]
    up = snippet("compose-up", OPERATIONS)
    (service, event) = re.findall(r"compose exec (\w+) notifyd simulate ([\w.]+)", up)[0]
    assert service in compose()["services"]
    sample_event(event, "a")  # a type the catalogue has a sample of
    (mailpit,) = compose()["services"]["mailpit"]["ports"]
    catcher = re.search(r"<http://localhost:(\d+)>", OPERATIONS.read_text("utf-8"))
    assert catcher
    # compose.yaml's "127.0.0.1:${MAILPIT_PORT:-8025}:8025": the host's port by default.
    assert mailpit.endswith(f":-{catcher.group(1)}}}:8025"), mailpit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_image_builds_and_its_health_check_goes_green(tmp_path: Path) -> None:
    engine_or_skip()
    name = f"notifyd-test-{uuid.uuid4().hex[:8]}"
    # The embedded PostgreSQL in the state volume, emails to its outbox: no other service.
    config = base_config(tmp_path, "", None, daemon={"state_dir": "/var/lib/notifyd"})
    config["http"] = {"host": "0.0.0.0", "port": 8080}
    path = write_config(tmp_path / "notifyd.toml", config)
    path.chmod(0o644)  # read by the image's user
    script = snippet("container-run", OPERATIONS)
    places = {
        "-t notifyd .": f"-t {name} {ROOT}",
        "--name notifyd": f"--name {name}",
        f"-v {DEFAULT_CONFIG}:": f"-v {path}:",
        "notifyd-state:": f"{name}:",
        "--env-file /etc/notifyd/secrets.env": "",
        "-p 8080:8080 notifyd": f"-p 127.0.0.1:{free_port()}:8080 {name}",
        "' notifyd": f"' {name}",
    }
    for doc, here in places.items():
        script = script.replace(doc, here)
    try:
        ran = docker_shell(script)
        assert ran.strip().splitlines()[-1] in ("starting", "healthy"), ran
        wait_healthy(name)
        user = docker("exec", name, "id", "-u").stdout.strip()
        assert user != "0"
    finally:
        docker_cleanup(["rm", "-f", name], ["volume", "rm", "-f", name], ["rmi", "-f", name])


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_compose_stack_delivers_a_simulated_event_to_its_mail_catcher() -> None:
    engine_or_skip(compose_too=True)
    mailpit = free_port()
    env = {
        "COMPOSE_PROJECT_NAME": f"notifyd-test-{uuid.uuid4().hex[:8]}",
        "NOTIFYD_PORT": str(free_port()),
        "MAILPIT_PORT": str(mailpit),
    }
    # No terminal in a test: exec without one (-T), as a script would run it.
    script = snippet("compose-up", OPERATIONS).replace("compose exec ", "compose exec -T ")
    try:
        docker_shell(script.replace("up -d --wait", "up -d --build --wait"), env)
        (message,) = mailpit_messages(f"http://127.0.0.1:{mailpit}", 1)
        # The sample account.created event's address, sent by the stack's notifyd.
        assert [to["Address"] for to in message["To"]] == ["subscriber@example.com"]
    finally:
        project = env["COMPOSE_PROJECT_NAME"]
        docker_cleanup(["compose", "-p", project, "down", "-v", "--rmi", "local"])
