"""What the Asterisk tests share: Asterisk's side of an AGI session (the `agi_*` environment,
then an answer to each GET VARIABLE as res_agi.c writes it), the email app_voicemail pipes
to `mailcmd` (make_email_file and add_email_attachment of app_voicemail.c, byte for byte in
form), and the doc's dialplan and voicemail.conf read as Asterisk reads them."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import WAIT
from tests.integration.send_support import PYTHON, ROOT, localized, run, snippet

CONTRIB = ROOT / "contrib" / "asterisk"
INSTALLED = "/usr/local/share/notifyd/asterisk/"


def asterisk_snippet(name: str, base_url: str, tmp_path: Path) -> str:
    """A snippet of the Asterisk section with the test's notifyd, secret, spool, mailbox map
    (the doc's) and the scripts of contrib/asterisk in place of the installed ones."""
    mailboxes = tmp_path / "mailboxes"
    mailboxes.write_text(snippet("asterisk-mailboxes"))
    text = localized(snippet(name), base_url, tmp_path).replace(INSTALLED, f"{CONTRIB}/")
    return text.replace("/etc/notifyd/mailboxes", str(mailboxes))


def dialplan(text: str) -> dict[str, list[tuple[str, str]]]:
    """extensions.conf: each context's applications in order, as (name, arguments)."""
    contexts: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if heading := re.fullmatch(r"\[([\w-]+)\]", line.strip()):
            current = contexts.setdefault(heading[1], [])
        elif step := re.match(r"\s*(?:exten => [^,]+,1|same => n),(\w+)\((.*)\)\s*$", line):
            current.append((step[1], step[2]))
    return contexts


def set_values(steps: list[tuple[str, str]]) -> dict[str, str]:
    """The Set(NAME=VALUE) of a context, with the ${...} left as written."""
    return dict(args.partition("=")[::2] for app, args in steps if app == "Set")


def agi_command(text: str) -> list[str]:
    """The AGI() of the doc's handler context as a process: the script under this Python
    (Asterisk would exec it by its #! line) and its arguments."""
    [args] = [args for app, args in dialplan(text)["notifyd-missed"] if app == "AGI"]
    script, *arguments = args.split(",")
    return [PYTHON, script, *arguments]


def environment(channel: str, uniqueid: str, caller: str, dnid: str) -> str:
    """The lines res_agi.c's setup_env sends first, ending with the blank line."""
    lines = {
        "agi_request": f"{CONTRIB}/notifyd-missed.agi",
        "agi_channel": channel,
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_version": "20.9.3",
        "agi_callerid": caller,
        "agi_calleridname": "unknown",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": dnid,
        "agi_rdnis": "unknown",
        "agi_context": "notifyd-missed",
        "agi_extension": "s",
        "agi_priority": "2",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140234986231488",
    }
    return "".join(f"{key}: {value}\n" for key, value in lines.items()) + "\n"


@dataclass
class Agi:
    """One run of the AGI script: what it asked, its exit code, stderr and wall time."""

    asked: list[str] = field(default_factory=list)
    code: int = -1
    err: str = ""
    seconds: float = 0.0


async def run_agi(command: list[str], env: str, variables: dict[str, str]) -> Agi:
    """Asterisk's side of the session: the environment, then for each `GET VARIABLE NAME`
    `200 result=1 (VALUE)`, or `200 result=0` for a variable the channel has not set."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin
    assert process.stdout
    assert process.stderr
    result = Agi()
    async with asyncio.timeout(WAIT):
        process.stdin.write(env.encode())
        while line := (await process.stdout.readline()).decode():
            command_line = line.rstrip("\n")
            assert command_line.startswith("GET VARIABLE "), f"not an AGI command: {line!r}"
            name = command_line.removeprefix("GET VARIABLE ")
            result.asked.append(name)
            value = variables.get(name)
            answer = "200 result=0\n" if value is None else f"200 result=1 ({value})\n"
            process.stdin.write(answer.encode())
            await process.stdin.drain()
        process.stdin.close()
        result.err = (await process.stderr.read()).decode()
        result.code = await process.wait()
    result.seconds = time.monotonic() - started
    return result


def substituted(template: str, values: dict[str, str]) -> str:
    """voicemail.conf's emailbody as app_voicemail writes it: \\n and \\t made real, each
    ${NAME} replaced (an unset one by nothing)."""
    text = template.replace("\\n", "\n").replace("\\t", "\t")
    return re.sub(r"\$\{(\w+)\}", lambda found: values.get(found[1], ""), text)


def conf_value(text: str, key: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"{key}=")]
    return line.split("=", 1)[1]


@dataclass
class Voicemail:
    """One message as app_voicemail knows it when it mails it."""

    mailbox: str
    msgnum: int  # 0-based, as in the file name; VM_MSGNUM is one more
    cidnum: str
    cidname: str
    duration: int
    category: str
    audio: bytes
    context: str = "default"
    fullname: str = "Ion Ionescu"
    address: str = "voicemail-101@pbx.invalid"
    date: str = "Sun, 01 Mar 2026 09:31:12 +0200"

    def values(self) -> dict[str, str]:
        unknown = "an unknown caller"
        return {
            "VM_NAME": self.fullname,
            "VM_DUR": f"{self.duration // 60}:{self.duration % 60:02d}",
            "VM_MSGNUM": str(self.msgnum + 1),
            "VM_CONTEXT": self.context,
            "VM_MAILBOX": self.mailbox,
            "VM_CALLERID": f'"{self.cidname}" <{self.cidnum}>' if self.cidnum else unknown,
            "VM_CIDNAME": self.cidname or unknown,
            "VM_CIDNUM": self.cidnum or unknown,
            "VM_DATE": "Sunday, March 01, 2026 at 09:31:12 AM",
            "VM_CATEGORY": self.category or "no category",
        }

    def email(self, emailbody: str | None) -> bytes:
        """make_email_file's output for file storage (no X-Asterisk-VM-* headers: those
        are written for IMAP storage only), attach=yes, format=wav."""
        values = self.values()
        bound = f"----voicemail_{self.msgnum + 1}{self.mailbox}4242123456789"
        if emailbody is None:
            body = (
                f"Dear {self.fullname}:\n\n\tJust wanted to let you know you were just left a "
                f"{values['VM_DUR']} long message (number {self.msgnum + 1})\n"
                f"in mailbox {self.mailbox} from {self.cidname or self.cidnum}, on "
                f"{values['VM_DATE']} so you might\nwant to check it when you get a chance."
                "  Thanks!\n\n\t\t\t\t--Asterisk\n\n"
            )
        else:
            body = substituted(emailbody, values) + "\n"
        encoded = base64.encodebytes(self.audio).decode()
        filename = f"msg{self.msgnum:04d}.wav"
        caller = f"X-Asterisk-CallerID: {self.cidnum}\n" if self.cidnum else ""
        caller += f"X-Asterisk-CallerIDName: {self.cidname}\n" if self.cidname else ""
        return (
            f"Date: {self.date}\n"
            "From: Asterisk PBX <voicemail@pbx.example>\n"
            f'To: "{self.fullname}" <{self.address}>\n'
            f"Subject: New voicemail {self.msgnum + 1} in mailbox {self.mailbox}\n"
            f"Message-ID: <Asterisk-{self.msgnum + 1}-1804289383-{self.mailbox}-4242@pbx>\n"
            f"{caller}"
            "MIME-Version: 1.0\n"
            f'Content-Type: multipart/mixed; boundary="{bound}"\n'
            "\n\nThis is a multi-part message in MIME format.\n\n"
            f"--{bound}\n"
            "Content-Type: text/plain; charset=ISO-8859-1\n"
            "Content-Transfer-Encoding: 8bit\n\n"
            f"{body}"
            f"--{bound}\n"
            f'Content-Type: audio/x-wav; name="{filename}"\n'
            "Content-Transfer-Encoding: base64\n"
            "Content-Description: Voicemail sound attachment.\n"
            f'Content-Disposition: attachment; filename="{filename}"\n\n'
            f"{encoded}"
            f"\n\n--{bound}--\n.\n"
        ).encode("latin-1")


async def mailcmd(conf: str, email: bytes) -> tuple[int, str]:
    """Run voicemail.conf's mailcmd as app_voicemail does (`( mailcmd < file ) &`, by
    /bin/sh), the email on stdin; exit code and stderr."""
    # The script by this Python: Asterisk would exec it by its #! line.
    command = conf_value(conf, "mailcmd").replace(f"{CONTRIB}/", f"{PYTHON} {CONTRIB}/")
    ran = await run(["/bin/sh", "-c", command], stdin=email)
    assert "Traceback" not in ran.err, ran.err
    return ran.code, ran.err


def resolve(value: str, channel: dict[str, str]) -> str:
    """${NAME} and ${FUNC(arg)} of a dialplan value from the channel's values."""
    return re.sub(r"\$\{([^}]+)\}", lambda found: channel.get(found[1], ""), value)


def walk_inbound(text: str, channel: dict[str, str]) -> tuple[dict[str, str], bool]:
    """The doc's inbound context run on a channel whose Dial() ends with its DIALSTATUS:
    the channel's variables at hangup, and whether it reached VoiceMail(). An answered call
    and a caller who gave up (CANCEL) leave the dialplan at Dial(), as in Asterisk."""
    variables = dict(channel)
    for app, args in dialplan(text)["from-trunk"]:
        if app == "Set" and not args.startswith("CHANNEL(hangup_handler_push)"):
            name, _, value = args.partition("=")
            variables[name] = resolve(value, variables)
        elif app == "Dial" and channel["DIALSTATUS"] in {"ANSWER", "CANCEL"}:
            return variables, False
        elif app == "VoiceMail":
            return variables, True
    return variables, False


def expand(text: str, channel: dict[str, str]) -> str:
    """An application's argument as Asterisk's pbx_substitute_variables expands it: each
    ${...} from the innermost out, its result never expanded again (a caller ID holding
    "${...}" stays text); a function SHELL_QUOTE (func_strings.c: single quotes, each ' as
    '\\''), anything else a channel value, unset ones empty."""
    out, at = [], 0
    while (start := text.find("${", at)) >= 0:
        depth, end = 1, start + 2
        while depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        out.append(text[at:start])
        inner = expand(text[start + 2 : end - 1], channel)
        if inner.startswith("SHELL_QUOTE(") and inner.endswith(")"):
            out.append("'" + inner[len("SHELL_QUOTE(") : -1].replace("'", "'\\''") + "'")
        else:
            out.append(channel.get(inner, ""))
        at = end
    out.append(text[at:])
    return "".join(out)
