"""docs/integrations.md "Bounces and complaints from your relay", run as written: the
[smtp] and [sources.mta] blocks configure a running notifyd, the install block puts the
pipe script and its secret in place (prefixes and owners the test's own), the master.cf
argv of the doc's Postfix lines runs that installed script on a hard bounce to the VERP
sender notifyd used, and a report to a forged token is answered as the doc shows."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import asyncpg

from tests.conftest import SmtpSink, load_config, running_daemon, signed_request
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import post, subscribe
from tests.integration.doc_support import filled, like, merged, owner
from tests.integration.report_support import ANA, MTA_SECRET, sample, sent_notice
from tests.integration.send_support import ROOT, run, snippet


def placed(text: str, root: Path) -> str:
    """A doc block with the test's folders and owner for the doc's."""
    for doc, here in {
        "/usr/local/bin": str(root / "bin"),
        "/etc/notifyd": str(root / "etc-notifyd"),
        "-o root -g notifyd": owner(),
        "whsec_…": MTA_SECRET,
    }.items():
        text = text.replace(doc, here)
    return text


def master_cf_argv(base_url: str, root: Path, recipient: str) -> list[str]:
    """The argv of the doc's master.cf line, as pipe(8) gives it to the script: the
    installed script, the test's notifyd, the secret file the install block made."""
    [line] = [line for line in snippet("postfix-lines").splitlines() if "argv=" in line]
    text = placed(line.split("argv=", 1)[1], root).replace("http://127.0.0.1:8080", base_url)
    return [recipient if arg == "${recipient}" else arg for arg in shlex.split(text)]


async def test_the_relay_steps_of_the_doc_fail_a_bounced_notice(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "etc-notifyd").mkdir()
    install = placed(snippet("relay-install"), tmp_path)
    installed = await run(["bash", "-e", "-c", f"cd {ROOT}\n{install}"])
    assert installed.code == 0, installed
    assert (tmp_path / "etc-notifyd" / "mta.secret").stat().st_mode & 0o777 == 0o640
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    merged(config, snippet("relay-bounce-domain"))
    merged(config, filled(snippet("relay-mta-source"), tmp_path, secrets=MTA_SECRET))
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await subscribe(daemon, "acc-1", {}, email=ANA)
        await post(daemon, "fax.sent", "acc-1")
        notice = await sent_notice(db, "fax.sent")
        [sender] = [
            sender
            for message, (sender, _) in zip(smtp_sink.messages, smtp_sink.envelopes, strict=True)
            if message["Message-ID"] == notice["message_id"]
        ]
        assert sender.startswith("bounce+"), sender
        assert sender.endswith("@bounces.example.com"), sender
        report = sample(
            "postfix-hard.eml",
            bounce_address=sender,
            recipient=notice["recipient"],
            message_id=notice["message_id"],
        )
        argv = master_cf_argv(daemon.base_url, tmp_path, sender)
        assert argv[0] == str(tmp_path / "bin" / "notifyd-bounce")  # where the install put it
        piped = await run(argv, stdin=report)
        forged = "bounce+" + "A" * 32 + "@bounces.example.com"
        body, headers = signed_request(
            f"Notifyd-Envelope-Recipient: {forged}\r\n".encode() + report, MTA_SECRET
        )
        headers["Content-Type"] = "message/rfc822"
        url = f"{daemon.base_url}/v1/reports/mta"
        async with daemon.session.post(url, data=body, headers=headers) as response:
            answered = (response.status, await response.json())
        state = await db.fetchval("SELECT state FROM notices WHERE id = $1", notice["id"])
    assert piped.code == 0, piped
    assert state == "failed"
    assert answered[0] == 202
    like(json.loads(snippet("report-answer")), answered[1])
