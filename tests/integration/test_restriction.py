"""Restriction of processing (SPEC §2, issue 18): while an account is restricted its
notices outside the mandatory categories are held, neither sent nor cancelled, and
mandatory ones go; lifting it releases what is within its delivery lifetime and cancels
what is past it. Through the admin API with a real SMTP sink, and through the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.conftest import SmtpSink, base_config, running_daemon, write_config
from tests.integration.admin_support import call
from tests.integration.consent_now_support import (
    preferences,
    quiet_now,
    settings_for,
    settled,
)
from tests.integration.daemon_support import post, subscribe

RESTRICTION = "/v1/admin/subscribers/acc-1/restriction"
HELD = "held: processing of the account is restricted"


async def test_restriction_holds_optional_notices_and_its_lifting_releases_those_in_time(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    # A fax is worth sending for an hour here; a missed call for a day (the default).
    settings = settings_for(tmp_path, database_url, smtp_sink, delivery__lifetimes={"fax": 3600})
    async with running_daemon(settings) as daemon:
        await subscribe(daemon, "acc-1", {"quiet_hours": quiet_now()}, email="ana@client.example")
        await post(daemon, "fax.sent", "acc-1")  # waits for the quiet hours
        restricted = await call(daemon, "PUT", RESTRICTION)
        shown = await call(daemon, "GET", "/v1/admin/subscribers/acc-1")
        await preferences(daemon, "acc-1", quiet_hours="")
        # Routed while restricted: a missed call (would go at once, handed over at commit)
        # is held; a password change (security, mandatory) goes.
        await post(daemon, "call.missed", "acc-1", call_id="call-1")
        await post(daemon, "account.password_changed", "acc-1")
        await settled(smtp_sink, 2, db)  # the welcome, the password change
        rows = await db.fetch("SELECT kind, state FROM notices WHERE kind <> 'account.created'")
        while_restricted = {row["kind"]: row["state"] for row in rows}
        reasons = {
            r[0]
            for r in await db.fetch("SELECT last_error FROM notices WHERE state = 'restricted'")
        }
        # The fax waited past its lifetime meanwhile.
        await db.execute(
            "UPDATE notices SET created_at = now() - interval '2 hours' WHERE kind = 'fax.sent'"
        )
        lifted = await call(daemon, "DELETE", RESTRICTION)
        subjects = await settled(smtp_sink, 3, db)  # and now the missed call
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1")
        fax = await db.fetchrow("SELECT state, last_error FROM notices WHERE kind = 'fax.sent'")
        missing = await call(daemon, "PUT", "/v1/admin/subscribers/ghost/restriction")
    assert restricted[0] == 200
    assert restricted[1]["restricted"] is True
    assert restricted[1]["held"] == 1
    assert shown[1]["restricted_at"] == restricted[1]["restricted_at"] is not None
    assert while_restricted == {
        "fax.sent": "restricted",
        "call.missed": "restricted",
        "account.password_changed": "sent",
    }
    assert reasons == {HELD}
    assert lifted[0] == 200
    assert lifted[1] == {
        "account_id": "acc-1",
        "restricted": False,
        "restricted_at": None,
        "held": 0,
        "released": 1,
        "cancelled": 1,
    }
    assert len(subjects) == 3
    assert await db.fetchval("SELECT state FROM notices WHERE kind = 'call.missed'") == "sent"
    assert fax is not None
    assert fax["state"] == "cancelled"
    assert fax["last_error"].startswith("cancelled: the restriction was lifted after the fax")
    assert after[1]["restricted_at"] is None
    assert missing[0] == 404


async def test_the_cli_restricts_and_lifts_an_account(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO subscribers (account_id, email) VALUES ('acc-1', 'ana@client.example')"
    )
    config = write_config(tmp_path / "notifyd.toml", base_config(tmp_path, database_url, None))

    def privacy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "notifyd", "privacy", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    restricted = privacy("restrict", "acc-1")
    flag = await db.fetchval("SELECT restricted_at FROM subscribers WHERE account_id = 'acc-1'")
    lifted = privacy("lift", "acc-1")
    after = await db.fetchval("SELECT restricted_at FROM subscribers WHERE account_id = 'acc-1'")
    unknown = privacy("restrict", "ghost")
    assert restricted.returncode == 0, restricted.stderr
    assert "restricted since" in restricted.stdout
    assert flag is not None
    assert lifted.returncode == 0, lifted.stderr
    assert "not restricted; notices released: 0, cancelled: 0" in lifted.stdout
    assert after is None
    assert unknown.returncode == 67  # EX_NOUSER, as export and erase
    audited = await db.fetch("SELECT actor, action FROM audit ORDER BY id")
    assert [tuple(row) for row in audited] == [
        ("cli", "subscriber.restricted"),
        ("cli", "subscriber.restriction_lifted"),
    ]
    assert "nothing is held about account 'ghost'" in unknown.stderr
