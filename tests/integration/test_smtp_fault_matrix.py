"""The SMTP fault matrix (issue 16): every stage of the SMTP conversation answered with
each error that means something there, a dropped connection or silence past the timeout,
with and without PIPELINING. Each cell ends in the right state (retried with back-off for
4xx and connection faults, failed for 5xx, the relay's refusal of us pausing delivery
instead of failing anything), nothing is lost, a hard bounce is counted only when the
reply is about the recipient, and the breaker trips only for relay-wide faults. The
relay and the cells: `smtp_faults`."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.integration.smtp_faults import matrix_daemon, run_cell, scripted_relay

# The faults that mean something at each stage. Left out: 535 except at AUTH (a login
# reply); 450, 452, 550 and 552 before MAIL (no mailbox or storage is involved yet), and
# 451 and 500 at the greeting (RFC 5321 gives it 220, 421 or 554 only); 454 except at
# STARTTLS and AUTH (RFC 3207, RFC 4954); 450, 550 and 552 to the DATA command and 500
# after the final dot (a relay refuses the message once it has it, and a dot cannot be a
# syntax error).
CONNECTION = ["drop", "stall"]
ROWS = {
    "greeting": ["421", "554", *CONNECTION],
    "ehlo": ["421", "451", "500", "554", *CONNECTION],
    "starttls": ["421", "454", "500", "554", *CONNECTION],
    "auth": ["421", "454", "500", "535", "554", *CONNECTION],
    "mail": ["421", "450", "451", "452", "500", "550", "552", "554", *CONNECTION],
    "rcpt": ["421", "450", "451", "452", "500", "550", "552", "554", *CONNECTION],
    "data": ["421", "451", "452", "500", "554", *CONNECTION],
    "dot": ["421", "450", "451", "452", "550", "552", "554", *CONNECTION],
}
# The setup is aiosmtplib's either way; the transaction is mail/pipelined.py's or aiosmtplib's.
CASES = [
    pytest.param(stage, pipelining, id=f"{stage}-{'pipelining' if pipelining else 'without'}")
    for stage in ROWS
    for pipelining in (
        (True,) if stage in ("greeting", "ehlo", "starttls", "auth") else (True, False)
    )
]


@pytest.mark.parametrize(("stage", "pipelining"), CASES)
async def test_every_fault_at_a_stage_ends_in_the_right_state(
    stage: str, pipelining: bool, tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    async with (
        scripted_relay(tmp_path, pipelining=pipelining) as relay,
        matrix_daemon(tmp_path, database_url, relay) as daemon,
    ):
        problems = [
            await run_cell(daemon, relay, db, stage, fault, n)
            for n, fault in enumerate(ROWS[stage])
        ]
        # Nothing left behind: every notice of the row sent or failed, none claimed.
        left = await db.fetchval(
            "SELECT count(*) FROM notices WHERE state NOT IN ('sent', 'failed')"
        )
    failures = [p for p in problems if p]
    assert not failures, "\n".join(failures)
    assert left == 0
