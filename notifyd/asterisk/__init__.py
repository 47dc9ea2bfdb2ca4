"""Asterisk's side of notifyd: the hangup handler's AGI script (agi.py, `call.missed`) and the
voicemail `mailcmd` (voicemail.py, `voicemail.received`), run by the executables in
contrib/asterisk/ (docs/integrations.md, "Asterisk", says how to install them).

Both hand the event they build to `notifyd send` in-process (send_cli.py): its signing,
retries under one webhook-id, time bound and spool, so Asterisk never waits on a stopped
notifyd longer than `--timeout`. Like send_cli.py they import the standard library and
`standardwebhooks` only (an import contract in pyproject.toml keeps the daemon out): they
start once per call on the PBX.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path

from notifyd import send_cli


def add_sending_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both hooks pass on to `notifyd send` as they are."""
    parser.add_argument("--url", required=True, help="http://HOST:PORT/v1/webhooks/pbx")
    parser.add_argument("--secret-file", help=f"the pbx source's secret (or {send_cli.SECRET_ENV})")
    parser.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        help="the most a post may take, retries included (default 3); then it is spooled",
    )
    parser.add_argument("--spool", type=Path, help="where an event waits while notifyd is down")


def post(options: argparse.Namespace, event_arguments: Sequence[str]) -> int:
    """`notifyd send` with the hook's sending options and the event's own arguments; its
    exit code. Its report goes to stderr: an AGI script's stdout is Asterisk's command
    channel, and a line there would be read as a command."""
    argv = ["--url", options.url, "--timeout", str(options.timeout)]
    if options.secret_file:
        argv += ["--secret-file", options.secret_file]
    if options.spool is not None:
        argv += ["--spool", str(options.spool)]
    with redirect_stdout(sys.stderr):
        return send_cli.main([*argv, *event_arguments])


def stable_id(kind: str, *parts: str) -> str:
    """A webhook-id that the same call (or message) always gets, so a hook that runs twice,
    or two legs of one ring group, give notifyd one event. Hashed: the parts may name an
    account or a mailbox, and webhook ids are logged."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return f"asterisk-{kind}-{digest}"


def warn(message: str) -> None:
    """One line on stderr (Asterisk's log for an AGI; the mail log for mailcmd)."""
    print(f"notifyd asterisk: {' '.join(message.split())}", file=sys.stderr)
