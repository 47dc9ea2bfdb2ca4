"""The hangup handler's AGI script: posts `call.missed` for a call nobody answered
(contrib/asterisk/notifyd-missed.agi runs `main`; docs/integrations.md has the dialplan).

Asterisk runs it when the caller's channel hangs up, from the handler the inbound context
pushed (`CHANNEL(hangup_handler_push)`). It speaks AGI on stdin/stdout: the `agi_*`
environment lines up to a blank line, then one `GET VARIABLE` per value, each answered
`200 result=1 (VALUE)` or `200 result=0` (unset). GET VARIABLE works on a hung-up channel,
which is what a hangup handler has.

What it sends (SPEC §4-5): `call_id` is `CHANNEL(linkedid)`, the same on every leg of one
call, and the webhook-id is derived from it, so a ring group's legs give one notice; the
account is `NOTIFYD_ACCOUNT`, set by the admin's dialplan; a number the caller withheld
(`CALLERID(num-pres)` prohibited) is sent as `anonymous`, never as the number Asterisk
still knows; `to_voicemail` when the dialplan set `NOTIFYD_VOICEMAIL` before VoiceMail().
It never fails the call: whatever happens it exits 0, and it waits at most `--timeout` for
notifyd before spooling (the bound a channel's hangup can be held up by).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from notifyd.asterisk import add_sending_arguments, post, stable_id, warn

# Dial()'s DIALSTATUS values that mean nobody answered (app_dial.c). ANSWER does not, and
# neither do DONTCALL/TORTURE (privacy manager) nor INVALIDARGS (a dialplan mistake).
MISSED = frozenset({"NOANSWER", "BUSY", "CANCEL", "CHANUNAVAIL", "CONGESTION"})
# What the script asks Asterisk, by the name it gives each value.
VARIABLES = {
    "status": "DIALSTATUS",
    "linkedid": "CHANNEL(linkedid)",
    "account": "NOTIFYD_ACCOUNT",
    "voicemail": "NOTIFYD_VOICEMAIL",
    "called": "NOTIFYD_CALLED",
    "extension": "NOTIFYD_EXTENSION",
    "started": "NOTIFYD_STARTED",
    "dialed_time": "DIALEDTIME",
    "number": "CALLERID(num)",
    "name": "CALLERID(name)",
    "presentation": "CALLERID(num-pres)",
}
_ANSWER = re.compile(r"200 result=(-?\d+)(?: \((.*)\))?")


class Session:
    """One AGI conversation: the environment Asterisk sent first, and GET VARIABLE."""

    def __init__(self, reader: TextIO, writer: TextIO) -> None:
        self.reader = reader
        self.writer = writer
        self.environment: dict[str, str] = {}
        for line in iter(reader.readline, ""):
            if not line.strip():
                break
            key, _, value = line.rstrip("\n").partition(":")
            self.environment[key.strip()] = value.strip()

    def get(self, name: str) -> str | None:
        """The variable's value; None when unset, or when Asterisk would not say."""
        self.writer.write(f"GET VARIABLE {name}\n")
        self.writer.flush()
        for line in iter(self.reader.readline, ""):
            line = line.rstrip("\n")
            # HANGUP: Asterisk telling a script on a live channel that it hung up (we know);
            # 520-…: the lines of a usage message, ended by "520 End of proper usage."
            if line == "HANGUP" or line.startswith("520-"):
                continue
            answer = _ANSWER.fullmatch(line)
            return answer[2] if answer and answer[1] == "1" else None
        raise EOFError("Asterisk closed the AGI session")


def _caller(values: dict[str, str | None]) -> tuple[str, str | None]:
    """The caller ID to send and the name, honouring the caller's wish to withhold it."""
    presentation = (values["presentation"] or "").lower()
    if presentation.startswith("prohib"):
        return "anonymous", None  # the caller withheld it: the number stays on the PBX
    if presentation == "unavailable" or not values["number"]:
        return "unknown", None
    return values["number"] or "unknown", values["name"] or None


def _int(value: str | None) -> int | None:
    try:
        return max(0, int(float(value))) if value else None
    except ValueError:
        return None


def event_arguments(values: dict[str, str | None], environment: dict[str, str]) -> list[str]:
    """`notifyd send` arguments of the missed call the values describe."""
    account, linkedid = values["account"] or "", values["linkedid"] or environment["agi_uniqueid"]
    ring = _int(values["dialed_time"])
    started = _int(values["started"]) or int(time.time()) - (ring or 0)
    caller, name = _caller(values)
    called = values["called"] or environment.get("agi_dnid", "unknown")
    data = [
        f"call_id={linkedid}",
        f"caller_number={caller}",
        f"called_number={called}",
        f"started_at={datetime.fromtimestamp(started, UTC).isoformat()}",
        f"to_voicemail:={'true' if values['voicemail'] else 'false'}",
    ]
    data += [f"caller_name={name}"] if name else []
    data += [f"extension={values['extension']}"] if values["extension"] else []
    data += [f"ring_seconds:={ring}"] if ring is not None else []
    arguments = ["--type", "call.missed", "--account", account]
    arguments += ["--id", stable_id("missed", account, linkedid)]
    for item in data:
        arguments += ["--data", item]
    return arguments


def handle(options: argparse.Namespace, session: Session) -> None:
    values = {key: session.get(name) for key, name in VARIABLES.items()}
    status = (values["status"] or "").upper()
    if status not in MISSED and not values["voicemail"]:
        return  # answered, or never dialled: not a missed call
    if not values["account"]:
        warn("NOTIFYD_ACCOUNT is not set on this channel: no missed-call notice sent")
        return
    post(options, event_arguments(values, session.environment))


def main(argv: Sequence[str] | None = None) -> int:
    # A hangup may bring SIGHUP (AGISIGHUP=yes, the default): the post must finish or spool.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parser = argparse.ArgumentParser(prog="notifyd-missed.agi", description=__doc__)
    add_sending_arguments(parser)
    try:
        options = parser.parse_args(argv)
        handle(options, Session(sys.stdin, sys.stdout))
    except SystemExit as usage:  # argparse: the message is on stderr; the call goes on
        warn(f"bad arguments (exit {usage.code}); see the AGI() line of the dialplan")
    except Exception as error:  # a hook never breaks the call
        warn(f"no missed-call notice sent: {type(error).__name__}: {error}")
    return 0
