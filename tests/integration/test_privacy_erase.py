"""The erasure of an account (SPEC §2): nothing personal left in any column of any table but
billing notices within retention, stripped; the address kept off marketing as a keyed hash
through an import; twice is fine; a kill -9 half-way is finished by running it again."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from notifyd.catalogue.samples import SAMPLE_BROADCASTS, sample_event
from notifyd.jobs import purge_expired
from tests.conftest import (
    WAIT,
    Running,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
    write_config,
)
from tests.integration.admin_support import admin_config, call, post_import
from tests.integration.catalogue_support import post_ok
from tests.integration.consent_now_support import broadcast
from tests.integration.privacy_support import (
    ACCOUNT,
    EMAIL,
    PERSONAL,
    build_account,
    columns_holding,
    notifyd_command,
    sending_config,
)
from tests.integration.queue_support import settled_notices
from tests.integration.retention_support import NOW, ago

SUBSCRIBER = f"/v1/admin/subscribers/{ACCOUNT}"
OTHER = "m.popescu@other.example"


async def test_nothing_personal_is_left_but_billing_notices_within_retention_stripped(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    config = sending_config(tmp_path, database_url, smtp_sink)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await build_account(daemon, smtp_sink, db)
        # A billing notice past billing retention goes like every other notice.
        await db.execute(
            "UPDATE notices SET created_at = now() - interval '8 years'"
            " WHERE kind = 'billing.credit_added'"
        )
        held = {needle: await columns_holding(db, needle) for needle in PERSONAL}
        assert all(held.values()), held  # the scan finds each where it is held
        # A mailbox-full report counted for each notice, the billing one kept included.
        await db.execute(
            "INSERT INTO soft_bounce_reports (notice_id, status) SELECT id, '4.2.2' FROM notices"
        )
        first = await call(daemon, "DELETE", SUBSCRIBER)
        again = await call(daemon, "DELETE", SUBSCRIBER)
        exported = await call(daemon, "GET", f"{SUBSCRIBER}/export")

    assert first[0] == 200, first
    assert first[1]["already_erased"] is False
    assert first[1]["kept_notices"] == 1
    assert again[0] == 200
    assert again[1]["already_erased"] is True
    left = {needle: await columns_holding(db, needle) for needle in PERSONAL}
    assert left == {needle: [] for needle in PERSONAL}
    tables = ("subscribers", "events", "attachments", "consent_events", "credit_states")
    for table in (*tables, "soft_bounce_reports", "credit_statements"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
    assert await db.fetchval("SELECT count(*) FROM balance_history") == 0
    kept = await db.fetch("SELECT * FROM notices")
    assert [(n["kind"], n["state"], n["recipient"]) for n in kept] == [
        ("billing.payment_confirmed", "sent", "")
    ]
    assert kept[0]["event_id"] is None
    assert kept[0]["smtp_reply"] is None
    assert kept[0]["sent_at"] is not None
    assert kept[0]["context"] == {
        "amount": "119.00",
        "currency": "RON",
        "payment_id": "pay_8842",
        "invoice_number": "VOIP-2026-0042",
        "event_type": "billing.payment_confirmed",
    }
    # The export of the erased account says so, and shows what is kept.
    assert exported[0] == 200
    assert exported[1]["subscriber"] is None
    assert exported[1]["erasure"]["requested_by"] == "ops"
    assert [n["kind"] for n in exported[1]["notices"]] == ["billing.payment_confirmed"]


async def test_an_erased_address_stays_off_marketing_through_an_import_and_a_put(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    grant = {"marketing": True, "source": "subscriber", "wording_version": "2026-11"}
    async with running_daemon(settings) as daemon:
        whole = {"email": EMAIL, "username": None, "name": None, "language": None}
        assert (await call(daemon, "PUT", SUBSCRIBER, json={**whole, "timezone": None}))[0] == 201
        assert (await call(daemon, "POST", f"{SUBSCRIBER}/consent", json=grant))[0] == 201
        assert (await call(daemon, "DELETE", SUBSCRIBER))[0] == 200
        hashed = await columns_holding(db, EMAIL)
        csv = f"account_id,email,marketing\nacc-new-1,{EMAIL.upper()},true\n"
        assert (await post_import(daemon, csv.encode(), "text/csv"))[0] == 200
        imported = await call(daemon, "GET", "/v1/admin/subscribers/acc-new-1/consent")
        await db.execute("DELETE FROM suppressions")
        put = {**whole, "email": EMAIL, "timezone": None}
        assert (await call(daemon, "PUT", "/v1/admin/subscribers/acc-new-2", json=put))[0] == 201
        by_admin = {**grant, "source": "admin"}
        consent = "/v1/admin/subscribers/acc-new-2/consent"
        assert (await call(daemon, "POST", consent, json=by_admin))[0] == 201
        recreated = await call(daemon, "GET", consent)
        # The subscriber's own consent lifts it, and a later correction that keeps the
        # address does not put it back: only an address given again is checked.
        assert (await call(daemon, "POST", consent, json=grant))[0] == 201
        patch = {"name": "Maria P."}
        path = "/v1/admin/subscribers/acc-new-2"
        assert (await call(daemon, "PATCH", path, json=patch))[0] == 200
        lifted = await call(daemon, "GET", consent)
    assert lifted[1]["marketing"] == {"consent": True, "suppressed": False, "sendable": True}
    assert hashed == []  # erased: the address is nowhere in clear, the hash table included
    assert await db.fetchval("SELECT count(*) FROM erased_addresses") == 1
    assert imported[1]["marketing"] == {"consent": True, "suppressed": True, "sendable": False}
    # An admin's grant is no subscriber's own: the suppression stays.
    assert recreated[1]["marketing"]["suppressed"] is True


async def _given_again(daemon: Running, how: str, address: str) -> None:
    """acc-new is created, and given `address` `how`."""
    if how == "account.created":
        await post_ok(daemon, sample_event("account.created", "acc-new", email=address))
        return
    await post_ok(daemon, sample_event("account.created", "acc-new", email=OTHER))
    if how == "account.updated":
        await post_ok(daemon, sample_event("account.updated", "acc-new", email=address))
    else:
        path = "/v1/admin/subscribers/acc-new/preferences"
        chosen: dict[str, Any] = {"extra_emails": [address]}
        if how == "addresses":
            chosen = {"addresses": {"marketing": [OTHER, address]}}
        assert (await call(daemon, "PATCH", path, json=chosen))[0] == 200


@pytest.mark.parametrize("how", ["account.created", "account.updated", "extra_emails", "addresses"])
async def test_an_erased_address_given_again_by_a_webhook_or_preferences_stays_off_marketing(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink, how: str
) -> None:
    """Each way an address comes into an account, but the admin API's and an import's
    (tested above): the address, written as another system may write it, is suppressed,
    the admin API says so, and a marketing broadcast to the account (which consented, by
    the admin: not the subscriber's own consent, which alone lifts it) sends it nothing."""
    config = sending_config(tmp_path, database_url, smtp_sink)
    by_admin = {"marketing": True, "source": "admin", "wording_version": "2026-11"}
    consent = "/v1/admin/subscribers/acc-new/consent"
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, email=EMAIL))
        assert (await call(daemon, "DELETE", SUBSCRIBER))[0] == 200
        await _given_again(daemon, how, EMAIL.upper())
        assert (await call(daemon, "POST", consent, json=by_admin))[0] == 201
        marketing = (await call(daemon, "GET", consent))[1]["marketing"]
        await broadcast(daemon, "marketing.offer")
        await settled_notices(db)
    offers = await db.fetch(
        "SELECT lower(recipient) AS address FROM notices WHERE kind = $1", "marketing.offer"
    )
    # The other address, where the account keeps one, gets its offer: only the erased one
    # is kept off.
    kept = [OTHER] if how in ("extra_emails", "addresses") else []
    assert [o["address"] for o in offers] == kept
    assert await db.fetchval("SELECT array_agg(address) FROM suppressions") == [EMAIL]
    assert marketing["consent"] is True
    assert marketing["suppressed"] is True


async def test_a_finished_erasure_record_goes_with_the_audit_trail_its_hashes_stay(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, daemon_pool: asyncpg.Pool
) -> None:
    """The record of a finished erasure holds the account id, when and by whom: the audit
    trail's `subscriber.erased` told again, so it goes after [audit] keep_days (730) as the
    audit row does. One not finished stays whatever its age: a resumed erasure starts from
    it. The hashes of erased addresses stay: they keep the addresses off marketing."""
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    for account, finished in (("acc-young", 729), ("acc-old", 731), ("acc-unfinished", None)):
        await db.execute(
            "INSERT INTO erasures (account_id, requested_at, finished_at, requested_by)"
            " VALUES ($1, $2, $3, 'ops')",
            account,
            ago(1500),
            None if finished is None else ago(finished),
        )
    await db.execute(
        "INSERT INTO erased_addresses (address_hash, list, erased_at)"
        " VALUES ('\\x00ff'::bytea, 'marketing', $1)",
        ago(1500),
    )
    async with asyncio.timeout(WAIT * 4):
        outcome = await purge_expired(daemon_pool, settings, NOW, force=True)
    assert outcome is not None
    assert outcome.counts["erasure_records"] == 1
    left = await db.fetch("SELECT account_id FROM erasures ORDER BY account_id")
    assert [row["account_id"] for row in left] == ["acc-unfinished", "acc-young"]
    assert await db.fetchval("SELECT count(*) FROM erased_addresses") == 1


async def test_an_unknown_account_is_a_404_and_a_clear_exit(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, None)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        # A broadcast's event has the account '*', which is no account.
        sent = {"kind": "notice.service", **SAMPLE_BROADCASTS["notice.service"]}
        assert (await call(daemon, "POST", "/v1/admin/broadcasts", json=sent))[0] == 202
        status, body = await call(daemon, "DELETE", "/v1/admin/subscribers/ghost")
        star = await call(daemon, "DELETE", "/v1/admin/subscribers/%2A")
    assert (status, body["detail"]) == (404, "no subscriber 'ghost'")
    assert star[0] == 404
    assert await db.fetchval("SELECT count(*) FROM events WHERE account_id = '*'") == 1
    code, out, err = await notifyd_command(
        write_config(tmp_path / "cli.toml", config), "privacy", "erase", "ghost"
    )
    assert (code, out) == (67, "")
    assert "nothing is held about account 'ghost'" in err
    assert await db.fetchval("SELECT count(*) FROM erasures") == 0


ROWS = 20_000


async def big_account(db: asyncpg.Connection) -> None:
    """An account of ROWS events, each with a notice, written straight to the tables."""
    await db.execute(
        "INSERT INTO subscribers (account_id, email, name) VALUES ($1, $2, 'Maria Popescu')",
        ACCOUNT,
        EMAIL,
    )
    await db.execute(
        "INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at, data)"
        " SELECT gen_random_uuid(), 'pbx', 'w' || i, 'call.missed', $1, now(),"
        "        jsonb_build_object('caller_number', '+40721999111')"
        " FROM generate_series(1, $2) AS i",
        ACCOUNT,
        ROWS,
    )
    await db.execute(
        "INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language,"
        "                     timezone, state, message_id)"
        " SELECT gen_random_uuid(), id, account_id, 'call.missed', 'calls', $2, 'ro',"
        "        'Europe/Bucharest', 'sent', '<' || id || '@voip.example>'"
        " FROM events WHERE account_id = $1",
        ACCOUNT,
        EMAIL,
    )


async def test_an_erasure_killed_half_way_is_finished_by_running_it_again(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    await big_account(db)
    config = admin_config(tmp_path, database_url, None)
    config["privacy"] = {"erase_batch_rows": 20}
    path = write_config(tmp_path / "cli.toml", config)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "notifyd", "privacy", "erase", ACCOUNT, "--config", str(path)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(60):
        # Killed once its batches of events have begun: notices gone, events half-way.
        while not (await process.stderr.readline()).startswith(b"delete_events: "):
            assert process.returncode is None
        process.kill()
        await process.wait()
    assert await db.fetchval("SELECT count(*) FROM notices") == 0
    assert 0 < await db.fetchval("SELECT count(*) FROM events") < ROWS
    assert await db.fetchval("SELECT finished_at FROM erasures") is None

    code, out, err = await notifyd_command(path, "privacy", "erase", ACCOUNT)
    assert code == 0, err
    assert "erased: " in out
    assert "erased before" not in out
    for table in ("subscribers", "events", "notices"):
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
    assert await db.fetchval("SELECT finished_at IS NOT NULL FROM erasures")
    assert await columns_holding(db, EMAIL) == []
    assert await db.fetchval("SELECT count(*) FROM erased_addresses") == 1
