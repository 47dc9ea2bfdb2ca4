"""The voicemail hook: Asterisk's `mailcmd`, posting `voicemail.received` with the audio
instead of mailing it (contrib/asterisk/notifyd-voicemail runs `main`; docs/integrations.md
maps voicemail.conf's options).

app_voicemail writes the email it would send (headers, the `emailbody` with its `${VM_*}`
values filled in, the recording base64-encoded as `msgNNNN.<format>`) to a file and pipes
it to `mailcmd`. That email has everything a notice needs: caller, duration, mailbox and
the audio, which `externnotify` (context, mailbox and counts only) has not. The body is read
in either of two forms: the guide's `emailbody` of `key: value` lines (which also carries
`VM_CATEGORY`, where the dialplan puts the call's linkedid, its account and the caller's
presentation) or Asterisk's default text. The account is the category's, else the one
`--accounts` maps the mailbox to.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from email import message_from_binary_file, policy
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime
from pathlib import Path

from notifyd.asterisk import add_sending_arguments, post, stable_id, warn

MARKER = "notifyd-voicemail:"
# What app_voicemail puts in VM_CIDNUM / VM_CIDNAME when the channel had no caller ID.
UNKNOWN = "an unknown caller"
# Asterisk's own text (make_email_file, no emailbody set).
_DEFAULT = re.compile(
    r"left a (?P<duration>\d+:\d\d) long message \(number (?P<number>\d+)\)\s+"
    r"in mailbox (?P<mailbox>\S+) from",
)


def _keyed(text: str) -> dict[str, str]:
    """The guide's emailbody: `key: value` lines after the marker line."""
    if MARKER not in text:
        return {}
    lines = text.split(MARKER, 1)[1].splitlines()
    pairs = (line.partition(":") for line in lines)
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def _category(value: str) -> dict[str, str]:
    """VM_CATEGORY as the dialplan sets it: `notifyd call=… account=… pres=…`."""
    words = value.split()
    if not words or words[0] != "notifyd":
        return {}
    return dict(word.partition("=")[::2] for word in words[1:])


def _seconds(duration: str) -> int:
    minutes, _, seconds = duration.partition(":")
    return int(minutes) * 60 + int(seconds or 0)


def _accounts(path: Path | None) -> dict[str, str]:
    """`MAILBOX[@CONTEXT] ACCOUNT` lines; `#` starts a comment."""
    if path is None:
        return {}
    pairs = (line.split("#", 1)[0].split() for line in path.read_text().splitlines())
    return {words[0]: words[1] for words in pairs if len(words) == 2}


def _audio(message: Message) -> tuple[str, bytes] | None:
    for part in message.walk():
        kind = part.get_content_type()
        if kind.startswith("audio/") or kind == "application/ogg":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return Path(part.get_filename() or "message.wav").name, payload
    return None


def describe(message: EmailMessage, accounts: Path | None) -> dict[str, str] | None:
    """The voicemail's values (mailbox, context, duration, caller, account, call): None
    when the body is neither form."""
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else ""
    found = _keyed(text)
    if not found and (default := _DEFAULT.search(text)):
        found = {"mailbox": default["mailbox"], "duration": default["duration"]}
        found["caller-number"] = str(message.get("X-Asterisk-CallerID", ""))
        found["caller-name"] = str(message.get("X-Asterisk-CallerIDName", ""))
    if "mailbox" not in found:
        return None
    found.update(_category(found.get("category", "")))
    mailbox, context = found["mailbox"], found.get("context", "default")
    if not found.get("account"):  # the map is read only when the category has no account
        known = _accounts(accounts)
        found["account"] = known.get(f"{mailbox}@{context}", known.get(mailbox, ""))
    return found


def event_arguments(found: dict[str, str], message: EmailMessage, audio: Path) -> list[str]:
    number = found.get("caller-number", "")
    name = found.get("caller-name", "")
    if found.get("pres", "").lower().startswith("prohib"):
        number, name = "anonymous", ""  # the caller withheld it: the number stays here
    elif number in ("", UNKNOWN):
        number = "unknown"
    received = parsedate_to_datetime(str(message["Date"]))
    data = [
        f"mailbox={found['mailbox']}",
        f"caller_number={number}",
        f"duration_seconds:={_seconds(found.get('duration', '0:00'))}",
        f"received_at={received.isoformat()}",
    ]
    data += [f"caller_name={name}"] if name and name != UNKNOWN else []
    data += [f"call_id={found['call']}"] if found.get("call") else []
    ids = (found["account"], str(message.get("Message-ID", "")), found["mailbox"])
    arguments = ["--type", "voicemail.received", "--account", found["account"]]
    arguments += ["--id", stable_id("voicemail", *ids), "--attach", f"audio={audio}"]
    for item in data:
        arguments += ["--data", item]
    return arguments


def handle(options: argparse.Namespace, raw: Path | None) -> int:
    with open(raw, "rb") if raw else sys.stdin.buffer as source:
        message = message_from_binary_file(source, policy=policy.default)
    assert isinstance(message, EmailMessage)
    found = describe(message, options.accounts)
    audio = _audio(message)
    if found is None or audio is None:
        warn("not a voicemail email from app_voicemail (no mailbox or no audio): not sent")
        return 65
    if not found["account"]:
        warn("no account for this mailbox: set it in VM_CATEGORY or --accounts; not sent")
        return 65
    with tempfile.TemporaryDirectory(prefix="notifyd-voicemail-") as folder:
        path = Path(folder) / audio[0]
        path.write_bytes(audio[1])
        return post(options, event_arguments(found, message, path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notifyd-voicemail", description=__doc__)
    add_sending_arguments(parser)
    parser.add_argument("--accounts", type=Path, help="file of MAILBOX[@CONTEXT] ACCOUNT lines")
    parser.add_argument("email", nargs="?", type=Path, help="the email (default: stdin)")
    options = parser.parse_args(argv)
    try:
        return handle(options, options.email)
    except (OSError, ValueError, TypeError) as error:
        warn(f"no voicemail notice sent: {type(error).__name__}: {error}")
        return 74
