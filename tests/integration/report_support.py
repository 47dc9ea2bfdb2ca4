"""Bounce and complaint reports for the tests: the samples of tests/reports/ filled in for a
notice, and contrib/postfix/notifyd-bounce run on them as Postfix's pipe(8) runs it (the
argv of contrib/postfix/master.cf, under the real Python); a sent notice, a subscriber's
offers sent and waiting, and what a report left behind (the address's health, consent)."""

from __future__ import annotations

import asyncio
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from tests.conftest import WAIT, Running
from tests.integration.admin_support import call
from tests.integration.consent_now_support import broadcast, preferences, quiet_now
from tests.integration.daemon_support import subscribe
from tests.integration.queue_support import settled_notices

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "reports"
PIPE_SCRIPT = REPO / "contrib" / "postfix" / "notifyd-bounce"
MASTER_CF = REPO / "contrib" / "postfix" / "master.cf"
# A secret of the `mta` source, as the pipe script reads it from its file.
MTA_SECRET = "whsec_" + "bXRhLXNvdXJjZS1zZWNyZXQtZm9yLXRlc3Rz"
EX_TEMPFAIL = 75
ANA = "ana@client.example"


def sample(
    name: str,
    *,
    bounce_address: str = "",
    recipient: str = "ana@client.example",
    message_id: str = "<00000000-0000-0000-0000-000000000000@voip.example>",
    return_path: str | None = None,
) -> bytes:
    """A sample report, its placeholders filled in, its bytes otherwise as stored (8-bit
    text and CRLF line ends stay)."""
    raw = (SAMPLES / name).read_bytes()
    line_end = b"\r\n" if b"\r\n" in raw else b"\n"
    quoted_path = b"" if return_path is None else b"Return-Path: <%s>" % return_path.encode()
    for placeholder, value in (
        (b"@@BOUNCE_ADDRESS@@", bounce_address.encode()),
        (b"@@RECIPIENT@@", recipient.encode()),
        (b"@@MESSAGE_ID@@", message_id.encode()),
        (b"@@RETURN_PATH@@", quoted_path + line_end if quoted_path else b""),
    ):
        raw = raw.replace(placeholder, value)
    return raw


@dataclass(frozen=True)
class Piped:
    code: int
    stderr: str


def pipe_argv(url: str, secret_file: Path, recipient: str) -> list[str]:
    """master.cf's argv for the script, with this checkout's script, the test daemon's URL,
    the secret file and Postfix's ${recipient} put in."""
    line = next(line.strip() for line in MASTER_CF.read_text().splitlines() if "argv=" in line)
    argv = shlex.split(line.split("argv=", 1)[1])
    assert argv[0] == "/usr/local/bin/notifyd-bounce", argv
    swapped = {
        "/usr/local/bin/notifyd-bounce": str(PIPE_SCRIPT),
        "http://127.0.0.1:8080/v1/reports/mta": url,
        "/etc/notifyd/mta.secret": str(secret_file),
        "${recipient}": recipient,
    }
    return [swapped.get(arg, arg) for arg in argv]


async def pipe(
    url: str, secret_file: Path, recipient: str, message: bytes, *, timeout: float = 10.0
) -> Piped:
    """Run the pipe script as Postfix would: the message on its standard input. Under
    this Python without site-packages (-S) and isolated (-I): the standard library only."""
    argv = pipe_argv(url, secret_file, recipient)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        *argv,
        "--timeout",
        str(timeout),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT):
        _, stderr = await process.communicate(message)
    assert process.returncode is not None
    return Piped(process.returncode, stderr.decode())


async def sent_notice(db: asyncpg.Connection, kind: str) -> asyncpg.Record:
    """The latest notice of `kind`, once every notice is settled."""
    await settled_notices(db)
    row = await db.fetchrow(
        "SELECT id, state, recipient, message_id, smtp_reply FROM notices WHERE kind = $1"
        " ORDER BY created_at DESC LIMIT 1",
        kind,
    )
    assert row is not None
    assert row["state"] == "sent", row
    return row


async def health(db: asyncpg.Connection, address: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT hard_bounces, soft_bounces, undeliverable_at, last_reply FROM address_health"
        " WHERE address = lower($1)",
        address,
    )


async def offers(daemon: Running, db: asyncpg.Connection) -> tuple[asyncpg.Record, UUID]:
    """A subscriber who agreed to offers: one offer sent, another waiting (quiet hours)."""
    await subscribe(daemon, "acc-1", {}, email=ANA)
    given = {"marketing": True, "source": "subscriber", "wording_version": "v1"}
    assert (await call(daemon, "POST", "/v1/admin/subscribers/acc-1/consent", json=given))[0] == 201
    await broadcast(daemon, "marketing.offer")
    sent = await sent_notice(db, "marketing.offer")
    await preferences(daemon, "acc-1", quiet_hours=quiet_now())
    await broadcast(daemon, "marketing.offer")
    waiting = await db.fetchval(
        "SELECT id FROM notices WHERE kind = 'marketing.offer' AND state = 'queued'"
    )
    assert waiting is not None
    return sent, waiting


async def after_complaint(db: asyncpg.Connection, waiting: UUID) -> dict[str, Any]:
    return {
        "waiting": tuple(
            await db.fetchrow("SELECT state, last_error FROM notices WHERE id = $1", waiting) or ()
        ),
        "suppressed": await db.fetchval(
            "SELECT count(*) FROM suppressions WHERE address = $1 AND list = 'marketing'",
            ANA,
        ),
        "consent": [
            tuple(row)
            for row in await db.fetch(
                "SELECT granted, source FROM consent_events WHERE account_id = 'acc-1'"
                " ORDER BY at, id"
            )
        ],
        "audit": [
            tuple(row)
            for row in await db.fetch(
                "SELECT actor, action FROM audit WHERE actor = 'mail report' ORDER BY at"
            )
        ],
    }
