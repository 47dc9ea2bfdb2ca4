"""The install blocks of docs/integrations.md, run as written (only prefixes and owners
replaced, tests/integration/install_support.py): the wheel built from the checkout and
installed on a "PBX host" with `standardwebhooks` alone, the secret file the doc makes,
the drain's systemd units (`systemd-analyze verify`), Asterisk's scripts; then that
install posts to a running notifyd: one event, one email."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from tests.conftest import PBX_SECRET, SmtpSink, running_daemon
from tests.integration.asterisk_support import (
    CONTRIB,
    agi_command,
    asterisk_snippet,
    environment,
    run_agi,
)
from tests.integration.catalogue_support import sending_settings
from tests.integration.install_support import Host, distributions, install_pbx_host, shell
from tests.integration.send_support import run, snippet, webhook_ids

ACCOUNT = "acc-host"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    return install_pbx_host(tmp_path_factory.mktemp("pbx-host"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def add_subscriber(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO subscribers (account_id, email, language) VALUES ($1, $2, 'en')",
        ACCOUNT,
        "host@client.example",
    )


def secret_file(host: Host) -> Path:
    """The doc's "The secret" block, with the source's real secret for its placeholder."""
    script = host.place(snippet("secret-file")).replace("whsec_…", PBX_SECRET)
    shell(script, host.root, host.wheelhouse)
    return host.root / "etc-notifyd" / "pbx.secret"


def test_the_drain_units_name_the_installed_notifyd_and_verify(host: Host, tmp_path: Path) -> None:
    service = tmp_path / "notifyd-send-drain.service"
    service.write_text(host.place(snippet("drain-systemd")))
    timer = tmp_path / "notifyd-send-drain.timer"
    timer.write_text(snippet("drain-systemd-timer"))
    [start] = [line for line in service.read_text().splitlines() if line.startswith("ExecStart=")]
    command = start.removeprefix("ExecStart=").split()[0]
    assert command == host.notifyd
    assert os.access(command, os.X_OK)
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("no systemd-analyze here to verify the units with (the command is checked)")
    # The timer starts the service of its own name; verify reads both and the command.
    ran = subprocess.run(
        [analyze, "verify", str(service), str(timer)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert not ran.stderr, ran.stderr


def test_the_pbx_host_has_notifyd_send_and_standardwebhooks_only(host: Host) -> None:
    # pip and setuptools come with every venv (ensurepip); nothing of the daemon's.
    assert distributions(host) - {"pip", "setuptools"} == {"notifyd", "standardwebhooks"}


async def test_the_installed_sender_posts_one_event_for_one_email(
    host: Host, tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    secret = secret_file(host)
    await add_subscriber(db)
    event = sample_event("fax.sent", ACCOUNT)
    async with running_daemon(sending_settings(tmp_path, database_url, smtp_sink)) as daemon:
        ran = await run(
            [
                *(host.notifyd, "send", "-", "--url", f"{daemon.base_url}/v1/webhooks/pbx"),
                *("--secret-file", str(secret), "--timeout", "5"),
            ],
            stdin=json.dumps(event).encode(),
        )
        assert ran.code == 0, ran
        await smtp_sink.wait_for(1)
        stored = await webhook_ids(db)
    assert len(stored) == 1
    assert stored[0] in ran.out
    assert len(smtp_sink.messages) == 1
    # As the doc sets them: the folder and the file readable by the sending group only.
    assert mode(secret.parent) == 0o750
    assert mode(secret) == 0o640
    assert secret.read_text(encoding="utf-8") == f"{PBX_SECRET}\n"


async def test_a_world_readable_secret_file_is_warned_about(host: Host, tmp_path: Path) -> None:
    secret = tmp_path / "open.secret"
    secret.write_text(f"{PBX_SECRET}\n", encoding="utf-8")
    secret.chmod(0o644)
    # Nothing listens there: the event is spooled, the warning is what this looks at.
    ran = await run(
        [
            *(host.notifyd, "send", "--type", "fax.sent", "--account", ACCOUNT),
            *("--data", "pages:=1", "--url", "http://127.0.0.1:9/v1/webhooks/pbx"),
            *("--secret-file", str(secret), "--timeout", "1", "--spool", str(tmp_path / "spool")),
        ],
    )
    warnings = [line for line in ran.err.splitlines() if "readable by every local user" in line]
    assert len(warnings) == 1, ran
    assert PBX_SECRET not in ran.err + ran.out


async def test_the_asterisk_scripts_installed_as_the_doc_says_post_a_missed_call(
    host: Host, tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    shell(host.place(snippet("asterisk-install")), host.checkout, host.wheelhouse)
    installed = host.root / "share-notifyd" / "asterisk"
    scripts = sorted(installed.iterdir())
    assert [s.name for s in scripts] == ["notifyd-missed.agi", "notifyd-voicemail"]
    assert all(mode(script) == 0o755 for script in scripts)
    assert mode(host.root / "spool") == 0o750
    # Their first line names the doc's prefix, the venv the doc installed.
    agi = installed / "notifyd-missed.agi"
    assert agi.read_text(encoding="utf-8").splitlines()[0] == "#!/opt/notifyd-send/bin/python3"
    await add_subscriber(db)
    async with running_daemon(sending_settings(tmp_path, database_url, smtp_sink)) as daemon:
        dialplan = asterisk_snippet("asterisk-dialplan", daemon.base_url, tmp_path)
        command = agi_command(dialplan.replace(f"{CONTRIB}/", f"{installed}/"))
        # Exec'd as Asterisk does by its #! line, which names the PBX host's venv here.
        command[0] = str(host.venv / "bin" / "python3")
        variables = {
            "DIALSTATUS": "NOANSWER",
            "CHANNEL(linkedid)": "1772350200.77",
            "NOTIFYD_ACCOUNT": ACCOUNT,
            "CALLERID(num)": "+40721000077",
        }
        env = environment("PJSIP/trunk-00000077", "1772350200.77", "+40721000077", "0312000100")
        ran = await run_agi(command, env, variables)
        assert ran.code == 0, ran
        await smtp_sink.wait_for(1)
        data = await db.fetchval("SELECT data FROM events WHERE type = 'call.missed'")
    assert "Traceback" not in ran.err, ran.err
    assert data["call_id"] == "1772350200.77"
