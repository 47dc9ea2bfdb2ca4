"""Every snippet of docs/integrations.md, read from the doc and run against a real daemon:
what an operator copies works. Only the doc's host names, paths and install prefix are
replaced by the test's own."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest

from notifyd import spool
from notifyd.catalogue.samples import sample_event
from notifyd.client import prepare
from tests.conftest import SmtpSink, running_daemon
from tests.integration.catalogue_support import sending_settings
from tests.integration.send_support import localized, run, snippet, webhook_ids


async def types_stored(db: asyncpg.Connection) -> list[str]:
    return [row["type"] for row in await db.fetch("SELECT type FROM events ORDER BY type")]


async def test_the_send_examples_post_their_events(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = sending_settings(tmp_path, database_url, SmtpSink())
    async with running_daemon(settings) as daemon:
        script = localized(snippet("send-examples"), daemon.base_url, tmp_path)
        ran = await run(["bash", "-e", "-c", script])
    assert ran.code == 0, ran
    assert ran.out.count("202 accepted as event") == 2, ran
    assert await types_stored(db) == ["call.missed", "fax.sent"]
    stored = await db.fetchval("SELECT data FROM events WHERE type = 'call.missed'")
    assert stored["call_id"] == "1700000099.7"
    assert stored["ring_seconds"] == 25


def drain_command(name: str, text: str) -> list[str]:
    """The command a cron line or a systemd unit of the doc runs."""
    if name == "drain-cron":
        return text.split()[6:]  # five time fields and the user
    [line] = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=").split()


@pytest.mark.parametrize("name", ["drain-cron", "drain-systemd"])
async def test_the_drain_the_doc_schedules_posts_what_was_spooled(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, name: str
) -> None:
    settings = sending_settings(tmp_path, database_url, SmtpSink())
    async with running_daemon(settings) as daemon:
        # Spooled while notifyd was down, at the address it is back on.
        outgoing = prepare(sample_event("call.missed", "acc-1001"))
        spool.put(tmp_path / "spool", f"{daemon.base_url}/v1/webhooks/pbx", outgoing)
        command = drain_command(name, localized(snippet(name), daemon.base_url, tmp_path))
        ran = await run(command)
    assert ran.code == 0, ran
    assert await webhook_ids(db) == [outgoing.webhook_id]
    assert list(spool.pending(tmp_path / "spool")) == []


async def test_the_billing_python_example_stores_its_payment(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = sending_settings(tmp_path, database_url, SmtpSink())
    async with running_daemon(settings) as daemon:
        code = localized(snippet("billing-python"), daemon.base_url, tmp_path)
        ran = await run([sys.executable, "-c", code])
    assert ran.code == 0, ran
    assert ran.out.startswith("stored as "), ran
    assert await webhook_ids(db) == ["payment-pay-4471"]
    assert await types_stored(db) == ["billing.payment_confirmed"]


async def test_the_curl_and_openssl_example_is_signed_as_notifyd_checks(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = sending_settings(tmp_path, database_url, SmtpSink())
    async with running_daemon(settings) as daemon:
        script = localized(snippet("billing-shell"), daemon.base_url, tmp_path)
        ran = await run(["bash", "-e", "-o", "pipefail", "-c", script])
    assert ran.code == 0, ran
    assert '"duplicate": false' in ran.out or '"duplicate":false' in ran.out, ran
    assert await webhook_ids(db) == ["topup-tx-88213"]
    assert await types_stored(db) == ["billing.credit_added"]
