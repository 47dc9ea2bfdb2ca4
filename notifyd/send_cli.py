"""`notifyd send`: post one event to notifyd from a shell, a dialplan or cron; `--drain`
posts what an earlier `send --spool` kept. client.py signs and posts, spool.py keeps.

Called once per call on a busy PBX, so it starts fast: command.py (the `notifyd`
executable) hands `send` here before anything of the daemon is imported, and this module,
client.py and spool.py import the standard library and `standardwebhooks` only. Measured
with hyperfine (20 runs, user CPU, on a shared 2-core machine): `python -c pass` 27 ms;
`notifyd send --help` 81 ms, where loading the daemon first took 319 ms; a send answered 202
by a local stub 83 ms, where `notifyd simulate` took 502 ms. docs/integrations.md has the
table and its conditions.

The secret comes from `--secret-file` or NOTIFYD_SEND_SECRET, never from the command line
(any local user reads it in `ps`) and never from the daemon's config (a PBX host has none).
Exit codes, for the dialplan and cron (docs/integrations.md): 0 accepted or spooled, 2 bad
invocation or input, 65 refused by notifyd, 69 unreachable and no spool, 73 spool
unwritable. One line on stderr for each failure, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import stat
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notifyd import spool
from notifyd.client import Client, Outgoing, Refused, Unavailable, event, prepare, read_secret

SECRET_ENV = "NOTIFYD_SEND_SECRET"  # noqa: S105 - the name of the variable, not a secret
DEFAULT_TIMEOUT = 5.0
EXIT_USAGE = 2
EXIT_REFUSED = 65  # sysexits.h EX_DATAERR: the event is wrong; sending it again will not help
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: notifyd did not take it in time, and no spool
EXIT_CANT_SPOOL = 73  # EX_CANTCREAT: notifyd did not take it and the spool could not either

USAGE = """\
notifyd send [EVENT.json | -] --url URL [--secret-file PATH] [--timeout S] [--spool DIR]
       notifyd send --type TYPE --account ID [--data KEY=VALUE | KEY:=JSON ...]
                    [--attach KEY=PATH ...] --url URL ...
       notifyd send --drain DIR [--url URL] [--secret-file PATH] [--timeout S]"""


class UsageError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "event_file",
        nargs="?",
        metavar="EVENT",
        help='a JSON file holding {"type", "timestamp"?, "data"}, or - for stdin',
    )
    parser.add_argument("--url", help="the source's webhook URL: http://HOST:PORT/v1/webhooks/pbx")
    parser.add_argument(
        "--secret-file",
        metavar="PATH",
        help=f"file holding the source's whsec_ secret (or {SECRET_ENV})",
    )
    parser.add_argument("--type", dest="event_type", help="event type, e.g. call.missed")
    parser.add_argument("--account", help="account_id (with --type)")
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a data field as text (KEY=VALUE) or as JSON (KEY:=40, KEY:=true); repeatable",
    )
    parser.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="a file as the data field KEY (voicemail audio, fax document), sent inline in"
        " base64 with its name and type; repeatable",
    )
    parser.add_argument("--occurred-at", help="RFC 3339 time of the event (default: now)")
    parser.add_argument(
        "--id", dest="webhook_id", help="webhook-id to send under (default: a new one)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds it may take in all, retries included (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--spool", metavar="DIR", type=Path, help="if notifyd cannot take it in time, keep it here"
    )
    parser.add_argument(
        "--drain", metavar="DIR", type=Path, help="post the events spooled in DIR, oldest first"
    )


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(
        prog="notifyd send", usage=USAGE, description="Sign an event and post it to notifyd."
    )
    add_arguments(made)
    return made


def main(argv: Sequence[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    try:
        secret = _secret(args.secret_file)
        if args.drain is not None:
            return _drain(args, secret)
        if not args.url:
            raise UsageError("--url is required: http://HOST:PORT/v1/webhooks/SOURCE")
        client = Client(args.url, secret, timeout=args.timeout)
        return _send(args, client, prepare(_event(args), args.webhook_id))
    except (UsageError, ValueError, OSError) as error:
        return _fail(str(error), EXIT_USAGE)


def _send(args: argparse.Namespace, client: Client, outgoing: Outgoing) -> int:
    try:
        receipt = client.send(outgoing)
    except Refused as refusal:
        return _fail(str(refusal), EXIT_REFUSED)
    except Unavailable as error:
        if args.spool is None:
            return _fail(str(error), EXIT_UNAVAILABLE)
        try:
            path = spool.put(args.spool, client.url, outgoing)
        except OSError as cannot:
            return _fail(f"{error}; and could not spool it: {cannot}", EXIT_CANT_SPOOL)
        print(f"notifyd send: spooled {outgoing.webhook_id} to {path}: {error}", file=sys.stderr)
        return 0
    state = "duplicate of" if receipt.duplicate else "accepted as"
    print(f"{receipt.status} {state} event {receipt.event_id} (webhook-id {receipt.webhook_id})")
    return 0


def _drain(args: argparse.Namespace, secret: str) -> int:
    def client_for(url: str) -> Client:
        return Client(args.url or url, secret, timeout=args.timeout)

    with spool.drain_lock(args.drain) as mine:
        if not mine:
            print(f"{args.drain}: another drain is running; nothing done")
            return 0
        done = spool.drain(args.drain, client_for)
    print(
        f"{args.drain}: {done.sent} accepted, {done.rejected} set aside in "
        f"{args.drain / spool.REJECTED}, {done.left} left"
    )
    if done.stopped is not None:
        return _fail(
            f"stopped, notifyd did not take the next one: {done.stopped}", EXIT_UNAVAILABLE
        )
    return EXIT_REFUSED if done.rejected else 0


def _fail(message: str, code: int) -> int:
    print(f"notifyd send: {message}", file=sys.stderr)
    return code


def _secret(path: str | None) -> str:
    if path:
        if os.stat(path).st_mode & stat.S_IROTH:
            # Any local user could sign events as this source. A warning, not a refusal:
            # a PBX that posts today keeps posting while the admin fixes it.
            print(
                f"notifyd send: warning: {path} is readable by every local user; chmod o-r {path}",
                file=sys.stderr,
            )
        return read_secret(path)
    from_env = os.environ.get(SECRET_ENV, "").strip()
    if not from_env:
        raise UsageError(f"no secret: give --secret-file PATH or set {SECRET_ENV}")
    return from_env


def _event(args: argparse.Namespace) -> dict[str, Any]:
    if args.event_type:
        if args.event_file is not None:
            raise UsageError("give the event as EVENT or as --type, not both")
        if not args.account:
            raise UsageError("--type needs --account")
        when = datetime.fromisoformat(args.occurred_at) if args.occurred_at else None
        fields = {**_fields(args.data), **_attachments(args.attach)}
        return event(args.event_type, args.account, fields, when)
    if args.event_file is None:
        raise UsageError("no event: give EVENT.json, - for stdin, or --type and --account")
    if args.data or args.account:
        raise UsageError("--data and --account go with --type; EVENT already holds the data")
    text = sys.stdin.read() if args.event_file == "-" else Path(args.event_file).read_text()
    try:
        body = json.loads(text)
    except ValueError as error:
        raise UsageError(f"{args.event_file}: not JSON: {error}") from None
    if not (isinstance(body, dict) and isinstance(body.get("type"), str)):
        raise UsageError(f'{args.event_file}: expected {{"type": ..., "data": {{...}}}}')
    if not isinstance(body.get("data"), dict):
        raise UsageError(f'{args.event_file}: "data" must be an object')
    if "timestamp" not in body:  # when it happened: now, as with --type
        body = {**body, "timestamp": datetime.now(UTC).isoformat()}
    if args.attach:
        body = {**body, "data": {**body["data"], **_attachments(args.attach)}}
    return body


def _attachments(items: Sequence[str]) -> dict[str, Any]:
    """KEY=PATH: the file as SPEC's inline attachment, {"filename", "content_type",
    "data_base64"}, its type told by its name (a PBX names its recordings msg0001.wav)."""
    import mimetypes  # here: only a send with a file pays for reading the type tables

    files: dict[str, Any] = {}
    for item in items:
        key, sep, name = item.partition("=")
        if not sep or not key or not name:
            raise UsageError(f"--attach takes KEY=PATH, got {item!r}")
        path = Path(name)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        content = base64.b64encode(path.read_bytes()).decode("ascii")
        files[key] = {"filename": path.name, "content_type": kind, "data_base64": content}
    return files


def _fields(items: Sequence[str]) -> dict[str, Any]:
    """KEY=VALUE is text as given (a call_id of digits stays text); KEY:=JSON is a number,
    a boolean, null, a list or an object, as HTTPie reads the same two forms."""
    fields: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--data takes KEY=VALUE or KEY:=JSON, got {item!r}")
        if key.endswith(":"):
            try:
                fields[key[:-1]] = json.loads(value)
            except ValueError:
                raise UsageError(f"--data {key}=: not JSON: {value!r}") from None
        else:
            fields[key] = value
    return fields
