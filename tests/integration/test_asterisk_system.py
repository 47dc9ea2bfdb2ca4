"""The doc's System() hangup handler (docs/integrations.md, "Without an AGI script"): its
one line expanded as Asterisk expands it (asterisk_support.expand) on the channel the doc's
inbound context leaves, and run by /bin/sh as System() runs it, against a running notifyd."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import SmtpSink, running_daemon
from tests.integration.asterisk_support import dialplan, expand, walk_inbound
from tests.integration.catalogue_support import post_ok, sending_settings
from tests.integration.send_support import Ran, localized, run, snippet

ACCOUNT = "acc-1001"  # the doc's NOTIFYD_ACCOUNT
STARTED = int(time.time()) - 30


def channel(linkedid: str, status: str, **values: str) -> dict[str, str]:
    return {
        "EXTEN": "+40312000100",
        "EPOCH": str(STARTED),
        "CHANNEL(linkedid)": linkedid,
        "CALLERID(num)": "+40721000001",
        "CALLERID(name)": "Ion Ionescu",
        "CALLERID(num-pres)": "allowed_not_screened",
        "DIALSTATUS": status,
        "DIALEDTIME": "25",
        **values,
    }


async def hang_up(base_url: str, tmp_path: Path, state: dict[str, str]) -> Ran:
    """The doc's inbound context, then its System() line through /bin/sh."""
    variables, _ = walk_inbound(localized(snippet("asterisk-dialplan"), base_url, tmp_path), state)
    handler = localized(snippet("asterisk-system"), base_url, tmp_path)
    [line] = [args for app, args in dialplan(handler)["notifyd-missed"] if app == "System"]
    return await run(["/bin/sh", "-c", expand(line, variables)])


async def missed_calls(db: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    rows = await db.fetch("SELECT webhook_id, data FROM events WHERE type = 'call.missed'")
    return {row["data"]["call_id"]: dict(row["data"]) | {"id": row["webhook_id"]} for row in rows}


async def test_the_system_line_posts_missed_calls_and_nothing_for_an_answered_one(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(sending_settings(tmp_path, database_url, smtp_sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        url = daemon.base_url
        # A ring group's two legs, gone to voicemail: one event.
        first = await hang_up(url, tmp_path, channel("1772350200.1", "NOANSWER"))
        second = await hang_up(url, tmp_path, channel("1772350200.1", "NOANSWER"))
        withheld = channel("1772350200.2", "CANCEL", **{"CALLERID(num-pres)": "prohib"})
        hidden = await hang_up(url, tmp_path, withheld)
        answered = await hang_up(url, tmp_path, channel("1772350200.3", "ANSWER"))
        calls = await missed_calls(db)
    assert (first.code, second.code, hidden.code) == (0, 0, 0), (first, second, hidden)
    # test(1) said no: notifyd send never ran.
    assert answered.code != 0
    assert answered.out == answered.err == ""
    assert sorted(calls) == ["1772350200.1", "1772350200.2"]
    voicemail = calls["1772350200.1"]
    assert voicemail["id"] == "asterisk-missed-1772350200.1"
    assert voicemail["caller_number"] == "+40721000001"
    assert voicemail["called_number"] == "+40312000100"
    assert voicemail["extension"] == "600"
    assert voicemail["ring_seconds"] == 25
    assert voicemail["to_voicemail"] is True
    assert voicemail["started_at"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(STARTED)))
    assert calls["1772350200.2"]["caller_number"] == "anonymous"
    assert calls["1772350200.2"]["to_voicemail"] is False


async def test_a_caller_id_cannot_run_commands_through_the_system_line(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """The caller chooses the caller ID; System() gives the line to /bin/sh."""
    planted = tmp_path / "planted"
    hostile = f"'; touch {planted}; echo '$(touch {planted})`touch {planted}`${{EPOCH}}"
    async with running_daemon(sending_settings(tmp_path, database_url, smtp_sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT))
        state = channel("1772350200.9", "CANCEL", **{"CALLERID(num)": hostile})
        await hang_up(daemon.base_url, tmp_path, state)
        calls = await missed_calls(db)
    assert not planted.exists()
    # Stored as the text it was, if notifyd took it at all: never run, never expanded.
    assert calls.get("1772350200.9", {}).get("caller_number", hostile) == hostile
