"""What the tests of contrib/freeswitch/ share: a FreeSWITCH hook run under the Debian Lua
interpreter with freeswitch_standin.lua in place of mod_lua, configured by the vars.xml lines
of docs/integrations.md, and the channel variables FreeSWITCH gives each leg of a call."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.send_support import ROOT, Ran, localized, run, snippet

CONTRIB = ROOT / "contrib" / "freeswitch"
STANDIN = Path(__file__).with_name("freeswitch_standin.lua")
LUA = shutil.which("lua5.4") or shutil.which("lua5.1") or shutil.which("lua")
needs_lua = pytest.mark.skipif(
    LUA is None,
    reason="no Lua interpreter to run contrib/freeswitch/*.lua: apt-get install lua5.4",
)
A_LEG = "6f1d2a8e-0c4b-4a57-9d3e-0a1b2c3d4e5f"
STARTED = 1_767_261_600  # 2026-01-01T10:00:00Z


def doc_globals(base_url: str, tmp_path: Path) -> dict[str, str]:
    """The global variables the doc's vars.xml lines set, with the test's places."""
    text = localized(snippet("freeswitch-vars"), base_url, tmp_path)
    found = dict(re.findall(r'data="(notifyd_\w+)=([^"]*)"', text))
    # The log of notifyd send's failures, in the test's folder rather than FreeSWITCH's.
    return {**found, "notifyd_log": str(tmp_path / "notifyd-send.log")}


def doc_script(name: str, pattern: str) -> str:
    """The script a doc snippet installs: `pattern` has one group, the script's name."""
    found = re.search(pattern, snippet(name))
    assert found, f"snippet {name!r} installs no script"
    return found.group(1)


def write_pairs(path: Path, pairs: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in pairs.items()))
    return path


async def run_hook(
    tmp_path: Path, base_url: str, script: str, mode: str, headers: dict[str, str], *args: str
) -> Ran:
    """SCRIPT as mod_lua runs it: `env` (a hangup hook) or `event` (an event hook)."""
    assert LUA is not None
    globals_file = write_pairs(tmp_path / "globals.txt", doc_globals(base_url, tmp_path))
    headers_file = write_pairs(tmp_path / "headers.txt", headers)
    argv = [LUA, str(STANDIN), str(globals_file), str(headers_file), mode, str(CONTRIB / script)]
    ran = await run([*argv, *args], env={"LUA_PATH": f"{CONTRIB}/?.lua;;"})
    assert ran.code == 0, ran
    return ran


def leg(uuid: str, /, a_leg: str = A_LEG, **variables: str) -> dict[str, str]:
    """A leg of an incoming call (its caller's leg `a_leg`) to ring group 600 that nobody
    answered, as its channel variables are at hangup; `variables` change or add some."""
    base = {
        "uuid": uuid,
        "call_uuid": a_leg,
        "domain_name": "acc-fs.voip.example",
        "accountcode": "acc-fs",
        "call_direction": "inbound",
        "caller_id_number": "+40721555123",
        "caller_id_name": "Ion Ionescu",
        "caller_destination": "+40215550100",
        "destination_number": "600",
        "dialed_extension": "600",
        "hangup_cause": "ORIGINATOR_CANCEL",
        "originate_disposition": "ORIGINATOR_CANCEL",
        "start_epoch": str(STARTED),
        "answer_epoch": "0",
        "end_epoch": str(STARTED + 25),
        "billsec": "0",
        "progresssec": "1",
    }
    if uuid != a_leg:  # a leg the ring group rang
        base |= {"originating_leg_uuid": a_leg, "destination_number": "101"}
    return base | variables
