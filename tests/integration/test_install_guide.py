"""docs/operations.md's "Installing" part, run as written in a folder of the test's own
(tests/integration/install_support.py puts the test's folders and user in place of /opt,
/etc, /var/lib and `notifyd`, and gives pip a wheelhouse of requirements/run.txt): the wheel
built from a copy of the checkout holds every file of the package, installs into a fresh
virtual environment with its dependencies (the locked ones, or pip's choice within its
bounds, the `embedded` extra too: one install, resolved from nothing by pip's dry run),
and `notifyd --version` and `check-config` run from it, on the wheel's own requirements;
the guide leaves every path that systemd/notifyd.service names, the unit's own check
passes, and systemd-analyze accepts the unit where it is installed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from notifyd.settings import environment_keys
from tests.integration.install_support import (
    STEP_SECONDS,
    ServerHost,
    install_server_host,
    locked_pins,
    normalized,
    notifyd_without,
    resolved,
    shell,
    unit_entries,
)
from tests.integration.send_support import OPERATIONS, ROOT, snippet

# Building the wheel, filling the wheelhouse and one install of every dependency, shared by
# the tests (the module's fixture): about a minute and a half alone, more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

UNIT = ROOT / "systemd" / "notifyd.service"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
VERSION = PROJECT["version"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> ServerHost:
    return install_server_host(tmp_path_factory.mktemp("server-host"))


def unit(host: ServerHost) -> list[tuple[str, str]]:
    return unit_entries(host.place(UNIT.read_text(encoding="utf-8")))


def values(entries: list[tuple[str, str]], key: str) -> list[str]:
    return [value for name, value in entries if name == key]


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=STEP_SECONDS, check=False
    )


def test_the_wheel_holds_every_file_of_the_package(server: ServerHost) -> None:
    # The checkout copy as a fresh clone has it: each of its files under notifyd/ must be
    # in the wheel (a folder of templates left out of package-data would not be).
    package = server.checkout / "notifyd"
    files = {p.relative_to(server.checkout).as_posix() for p in package.rglob("*") if p.is_file()}
    with zipfile.ZipFile(server.wheel) as wheel:
        packed = set(wheel.namelist())
    assert sorted(files - packed) == []
    assert server.wheel.name == f"notifyd-{VERSION}-py3-none-any.whl"


def test_the_venv_of_the_guide_runs_notifyd(server: ServerHost) -> None:
    assert server.printed["install-venv"].strip().splitlines()[-1] == f"notifyd {VERSION}"
    assert "notifyd.toml: ok" in server.printed["install-unit"]


def test_the_guide_makes_every_path_the_unit_names(server: ServerHost) -> None:
    entries = unit(server)
    commands = [
        shlex.split(v) for v in values(entries, "ExecStartPre") + values(entries, "ExecStart")
    ]
    for argv in commands:
        assert os.access(argv[0], os.X_OK), argv
        assert Path(argv[argv.index("--config") + 1]).is_file(), argv
    for environment_file in values(entries, "EnvironmentFile"):
        assert Path(environment_file.removeprefix("-")).is_file(), environment_file
    (state,) = values(entries, "ReadWritePaths")
    assert Path(state).is_dir()
    # systemd makes /var/lib/<StateDirectory> and /etc/<ConfigurationDirectory>: the same.
    assert Path(server.place(f"/var/lib/{values(entries, 'StateDirectory')[0]}")) == Path(state)
    config = Path(server.place(f"/etc/{values(entries, 'ConfigurationDirectory')[0]}"))
    assert config.is_dir()
    # What the service reads, readable by its group only; what it writes, its own.
    assert mode(config) == 0o750
    assert mode(config / "notifyd.toml") == 0o640
    assert mode(config / "secrets.env") == 0o640
    assert mode(Path(state)) == 0o750
    assert (Path(server.place("/etc/systemd/system")) / "notifyd.service").read_text(
        encoding="utf-8"
    ) == UNIT.read_text(encoding="utf-8")


def test_the_units_check_passes_on_the_installed_config(server: ServerHost) -> None:
    # As systemd runs it: with the variables of the EnvironmentFile the guide filled in.
    (check,) = values(unit(server), "ExecStartPre")
    (environment_file,) = values(unit(server), "EnvironmentFile")
    lines = Path(environment_file.removeprefix("-")).read_text(encoding="utf-8").splitlines()
    variables = dict(line.split("=", 1) for line in lines if line)
    ran = subprocess.run(
        shlex.split(check),
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=STEP_SECONDS,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr


def test_the_secrets_file_names_only_variables_notifyd_reads() -> None:
    lines = [line for line in snippet("install-secrets", OPERATIONS).splitlines() if line]
    names = {line.split("=", 1)[0] for line in lines}
    assert names <= {variable for _, _, variable in environment_keys()}, names


def test_the_user_and_start_blocks_are_shell_for_the_units_user() -> None:
    # They need root and a running systemd: their syntax is checked, and that the user
    # made is the one the unit runs as, at home in its state folder.
    for name in ("install-user", "install-start"):
        ran = run(["sh", "-n", "-c", snippet(name, OPERATIONS)], ROOT)
        assert ran.returncode == 0, (name, ran.stderr)
    argv = shlex.split(snippet("install-user", OPERATIONS))
    entries = unit_entries(UNIT.read_text(encoding="utf-8"))
    assert argv[0] == "useradd"
    assert "--user-group" in argv
    assert argv[-1] == values(entries, "User")[0] == values(entries, "Group")[0]
    assert argv[argv.index("--home-dir") + 1] == values(entries, "ReadWritePaths")[0]
    start = snippet("install-start", OPERATIONS)
    assert f"enable --now {UNIT.stem}" in start


def test_systemd_analyze_accepts_the_unit_where_the_guide_installed_it(
    server: ServerHost, tmp_path: Path
) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("no systemd-analyze on this machine (Debian: the systemd package)")
    # The unit with the test's folders, so that its commands exist and are executable.
    localized = tmp_path / UNIT.name
    localized.write_text(server.place(UNIT.read_text(encoding="utf-8")), encoding="utf-8")
    ran = run([analyze, "verify", str(localized)], tmp_path)
    assert ran.returncode == 0, ran.stderr
    # It warns of unknown keys and bad values without failing: none may be left.
    assert re.sub(r".*Failed to .*(bus|Bus).*\n?", "", ran.stderr) == "", ran.stderr


def test_the_wheel_installs_in_a_fresh_venv_with_its_dependencies(server: ServerHost) -> None:
    # One install serves both lines of the guide: its unpinned lines run in the venv it
    # made fresh for the locked ones, where pip must find every requirement of the wheel and
    # of its embedded extra met by the locked versions (the wheelhouse has no others).
    script = server.place(snippet("install-unpinned", OPERATIONS))
    ran = shell(script, server.checkout, server.wheelhouse)
    assert "Successfully installed" not in ran.stdout, ran.stdout
    # What those lines install into an empty venv, resolved by pip without installing: the
    # locked set but the `fast` extra's, pgserver only with `embedded`.
    wheel = f"dist/{server.wheel.name}"
    plain, embedded = resolved(server, wheel), resolved(server, f"{wheel}[embedded]")
    fast = {
        normalized(re.split(r"[^\w.-]", r)[0]) for r in PROJECT["optional-dependencies"]["fast"]
    }
    assert {name for name, _ in locked_pins() - embedded} == fast
    assert embedded - locked_pins() == {("notifyd", VERSION)}
    assert "pgserver" in {name for name, _ in embedded - plain}
    # notifyd runs on what the wheel alone brings: every other locked package hidden.
    hidden = {name for name, _ in locked_pins() - plain}
    ran = notifyd_without(server, hidden, "--version")
    assert ran.stdout.strip() == f"notifyd {VERSION}", ran
    example = server.checkout / "config" / "notifyd.example.toml"
    ran = notifyd_without(server, hidden, "check-config", "--config", str(example))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"{example}: ok (2 sources)"
    ran = run([server.place("/opt/notifyd/.venv/bin/python"), "-c", "import pgserver"], ROOT)
    assert ran.returncode == 0, ran.stderr
