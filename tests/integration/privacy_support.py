"""An account holding every kind of data notifyd keeps, built as the billing system, the PBX
and an admin would build it (signed webhooks, the admin API, a real SMTP sink); what of it
is personal; and a scan of every column of every table for it (test_privacy_export,
test_privacy_erase)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import Running, SmtpSink, eventually
from tests.integration.admin_support import admin_config, call
from tests.integration.catalogue_support import FAST_DELIVERY, post_ok

ACCOUNT = "acc-rights-1"
EMAIL = "maria.popescu@client.example"
OFFICE = "birou.popescu@client.example"
NAME = "Maria Popescu"
USERNAME = "mpopescu77"
CALLER = "+40721999111"
CALLER_NAME = "Gheorghe Vasilescu"
CALLED = "+40215559900"
FAX_FROM = "+40215559988"
TRANSCRIPT = "Sunați-mă la birou, vă rog"
CARD = "card Visa Maria P."

# What an erasure must leave nowhere (numbers also without their +).
PERSONAL = (
    EMAIL,
    OFFICE,
    NAME,
    USERNAME,
    CALLER,
    CALLER[1:],
    CALLER_NAME,
    CALLED[1:],
    FAX_FROM[1:],
    TRANSCRIPT,
    CARD,
)


def sending_config(tmp_path: Path, database_url: str, sink: SmtpSink) -> dict[str, Any]:
    """The admin API's config, sending to `sink` at once, with low-credit thresholds (so a
    balance is kept: credit states and history)."""
    config = admin_config(tmp_path, database_url, sink.port)
    config["delivery"].update(FAST_DELIVERY)
    config["thresholds.RON"] = {"low": "10.00", "critical": "1.00"}
    return config


@dataclass(frozen=True)
class Fixture:
    account: str
    event_ids: dict[str, str]


async def build_account(daemon: Running, sink: SmtpSink, db: asyncpg.Connection) -> Fixture:
    """The account: subscriber, preferences (fax to the office, calls in an hourly digest),
    consent granted then withdrawn (a suppression), a missed call (held), a voicemail with
    its recording (sent), a fax the office's relay refuses (failed, a hard bounce), billing
    (two billing notices sent, a balance with its credit state and its month's statement
    record)."""
    created = sample_event(
        "account.created", ACCOUNT, email=EMAIL, name=NAME, username=USERNAME, language="ro"
    )
    ids = {"account.created": await post_ok(daemon, created)}
    await sink.wait_for(1)
    # The monthly statement too: its running record is something held of the account.
    modes = {"calls": "hourly", "statement": "immediate"}
    chosen = {"quiet_hours": "", "addresses": {"fax": [OFFICE]}, "modes": modes}
    path = f"/v1/admin/subscribers/{ACCOUNT}"
    assert (await call(daemon, "PATCH", f"{path}/preferences", json=chosen))[0] == 200
    for granted in (True, False):
        consent = {"marketing": granted, "source": "subscriber", "wording_version": "2026-11"}
        assert (await call(daemon, "POST", f"{path}/consent", json=consent))[0] == 201
    calls: dict[str, Any] = {"caller_number": CALLER, "caller_name": CALLER_NAME}
    events: tuple[tuple[str, dict[str, Any]], ...] = (
        ("call.missed", {**calls, "called_number": CALLED, "call_id": "c-1"}),
        ("voicemail.received", {**calls, "transcript": TRANSCRIPT, "call_id": "c-2"}),
        ("billing.payment_confirmed", {}),
        ("billing.credit_added", {"method": CARD}),
        ("billing.balance_updated", {"balance": "80.00"}),
    )
    for kind, data in events:
        ids[kind] = await post_ok(daemon, sample_event(kind, ACCOUNT, **data))
    await sink.wait_for(4)
    sink.rcpt_replies.append("550 5.1.1 <birou.popescu@client.example>: no such user")
    ids["fax.received"] = await post_ok(
        daemon, sample_event("fax.received", ACCOUNT, remote_number=FAX_FROM)
    )

    async def settled() -> bool:
        states = await db.fetch(
            "SELECT kind, state FROM notices WHERE account_id = $1 ORDER BY kind", ACCOUNT
        )
        found = {(row["kind"], row["state"]) for row in states}
        return {("fax.received", "failed"), ("call.missed", "held")} <= found

    await eventually(settled, "the fax failed and the call held")
    return Fixture(ACCOUNT, ids)


async def columns_holding(db: asyncpg.Connection, needle: str) -> list[str]:
    """Every table.column (text, JSON, arrays and bytes alike, of every table in the
    schema, so tables added later are scanned too) whose value holds `needle`."""
    columns = await db.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " JOIN information_schema.tables USING (table_schema, table_name)"
        " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        " AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'bytea')"
    )
    found = []
    for column in columns:
        name = f'"{column["table_name"]}"."{column["column_name"]}"'
        if column["data_type"] == "bytea":
            test = f"position(convert_to($1, 'UTF8') in {name}) > 0"
        else:
            test = f"strpos(lower({name}::text), lower($1)) > 0"
        table = f'"{column["table_name"]}"'
        if await db.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {test})", needle):  # noqa: S608
            found.append(f"{column['table_name']}.{column['column_name']}")
    return found


async def notifyd_command(
    config: Path, *args: str, stdout: int = asyncio.subprocess.PIPE
) -> tuple[int, str, str]:
    """`python -m notifyd ARGS --config CONFIG` run to its end (a minute at most); `stdout`
    a file descriptor to write to instead of the pipe read here (then `out` is "")."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyd",
        *args,
        "--config",
        str(config),
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, (out or b"").decode(), err.decode()
