"""The audit trail: each kind of change is recorded (admin calls, the subscriber's pages,
consent, reloads) with who made it and the names of what changed, none of it personal data;
refused calls record nothing; a route added later is audited without doing anything; the
table is append-only but for purge_audit; GET /v1/admin/audit pages and filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from notifyd.catalogue.samples import sample_event
from notifyd.http import admin as admin_app
from notifyd.http.operations import Routes
from notifyd.storage import audit as audit_store
from tests.conftest import BILLING_SECRET, SmtpSink, load_config, running_daemon, write_config
from tests.integration.admin_support import (
    BROADCAST_TOKEN,
    OPS_TOKEN,
    READ_TOKEN,
    admin_config,
    call,
    post_import,
)
from tests.integration.daemon_support import submit, welcome

# What a subscriber is and the operator types: none of it may reach the audit table.
ADDRESS = "dana.known@client.example"
NEW_ADDRESS = "dana.new-address@client.example"
NAME = "Dana Knownname"
PHONE = "+40721999888"
PERSONAL = (ADDRESS, NEW_ADDRESS, NAME, "Knownname", PHONE, "721999888", "Corrected", "dana.k")
ROOT = Path(__file__).resolve().parents[2]
DETAILS = ("email", "username", "name", "language", "timezone")


class _AnyUuid:
    """Equal to any uuid's text: the broadcast's id, made by the daemon."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(r"[0-9a-f-]{36}", other) is not None

    def __hash__(self) -> int:
        return 0


A_UUID = _AnyUuid()


async def audit_rows(db: asyncpg.Connection) -> list[tuple[str, str, str | None, Any]]:
    rows = await db.fetch("SELECT actor, action, account_id, detail FROM audit ORDER BY id")
    return [(row["actor"], row["action"], row["account_id"], row["detail"]) for row in rows]


async def admin_changes(daemon: Any, db: asyncpg.Connection) -> None:
    """One change through each admin route that changes data, each carrying personal data."""
    whole = {
        "email": ADDRESS,
        "username": "dana.k",
        "name": NAME,
        "language": "ro",
        "timezone": None,
    }
    assert (await call(daemon, "PUT", "/v1/admin/subscribers/acc-7", json=whole))[0] == 201
    correction = {"email": NEW_ADDRESS, "name": f"{NAME} Corrected", "language": "ro"}
    assert (await call(daemon, "PATCH", "/v1/admin/subscribers/acc-7", json=correction))[0] == 200
    preferences = {"modes": {"calls": "daily"}, "extra_emails": [ADDRESS]}
    path = "/v1/admin/subscribers/acc-7/preferences"
    assert (await call(daemon, "PATCH", path, json=preferences))[0] == 200
    consent = {"marketing": True, "source": f"phone call {PHONE}", "wording_version": "v1"}
    path = "/v1/admin/subscribers/acc-7/consent"
    assert (await call(daemon, "POST", path, json=consent))[0] == 201
    assert (await call(daemon, "POST", path, json={**consent, "marketing": False}))[0] == 201
    broadcast = {
        "kind": "notice.service",
        "subject": {"ro": f"Pentru {NAME}", "en": "Maintenance"},
        "body": {"ro": f"Sunați {PHONE}", "en": "Works."},
        "starts_at": "2999-11-27T20:00:00Z",
    }
    status, created = await call(daemon, "POST", "/v1/admin/broadcasts", json=broadcast)
    assert status == 202
    path = f"/v1/admin/broadcasts/{created['id']}"
    assert (await call(daemon, "DELETE", path, token=BROADCAST_TOKEN))[0] == 200
    csv = f"account_id,email,name\nacc-8,{ADDRESS},{NAME}\n".encode()
    assert (await post_import(daemon, csv, "text/csv"))[0] == 200
    await db.execute(
        "INSERT INTO address_health (address, hard_bounces, undeliverable_at)"
        " VALUES ($1, 3, now())",
        ADDRESS,
    )
    async with daemon.session.delete(
        f"{daemon.admin_url}/v1/admin/undeliverable/{ADDRESS}",
        headers={"Authorization": f"Bearer {OPS_TOKEN}"},
    ) as answer:
        assert answer.status == 204


async def subscriber_changes(daemon: Any, smtp_sink: SmtpSink) -> None:
    """The subscriber's own: the preference form (a mode and offers), a one-click
    unsubscribe from marketing, and one from a digest's category."""
    link = await welcome(daemon, smtp_sink)
    assert (await submit(daemon, link, {"mode.fax": "off", "offers": "yes"}))[0] == 200
    links = daemon.daemon.links
    for url in (
        links.unsubscribe_url("acc-1", "acc-1@client.example", issued=datetime.now(UTC)),
        links.unsubscribe_url("acc-1", "acc-1@client.example", "calls", issued=datetime.now(UTC)),
    ):
        async with daemon.session.post(url, data={"List-Unsubscribe": "One-Click"}) as answer:
            assert answer.status == 200


async def test_each_kind_of_change_is_recorded_and_none_holds_personal_data(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        await admin_changes(daemon, db)
        await subscriber_changes(daemon, smtp_sink)
        config["admin.tokens"]["audit"] = config["admin.tokens"]["ops"]
        config["delivery"]["poll_seconds"] = 1
        write_config(settings.path, config)
        assert await daemon.daemon.reload()
        write_config(settings.path, {**config, "delivery": {"poll_seconds": "soon"}})
        assert not await daemon.daemon.reload()  # refused: the running config stays
    # Every column of every row, as text: none of what the calls carried.
    whole = "\n".join(await db.fetchval("SELECT array_agg(audit::text) FROM audit")).lower()
    assert [value for value in PERSONAL if value.lower() in whole] == []
    assert re.search(r"[\w.-]+@[\w.-]+", whole) is None
    link = "subscriber link"
    assert await audit_rows(db) == [
        ("ops", "subscriber.saved", "acc-7", {"created": True, "fields": list(DETAILS)}),
        ("ops", "subscriber.changed", "acc-7", {"fields": ["email", "name"]}),
        ("ops", "preferences.changed", "acc-7", {"fields": ["extra_emails", "modes"]}),
        ("ops", "consent.granted", "acc-7", {}),
        ("ops", "consent.withdrawn", "acc-7", {}),
        ("ops", "broadcast.created", None, {"broadcast_id": A_UUID, "kind": "notice.service"}),
        (
            "broadcaster",
            "broadcast.cancelled",
            None,
            {"broadcast_id": A_UUID, "notices_withdrawn": 0},
        ),
        ("ops", "subscribers.imported", None, {"imported": 1, "failed": 0}),
        ("ops", "undeliverable.cleared", None, {}),
        (link, "preferences.changed", "acc-1", {"fields": ["modes.fax"], "via": "preferences"}),
        (link, "consent.granted", "acc-1", {"via": "preferences"}),
        (link, "consent.withdrawn", "acc-1", {"via": "unsubscribe"}),
        (link, "preferences.changed", "acc-1", {"fields": ["modes.calls"], "via": "unsubscribe"}),
        ("config", "config.reloaded", None, {"sections": ["delivery", "admin"]}),
        ("config", "config.reload_refused", None, {"problems": 1}),
    ]


async def test_refused_and_failed_calls_record_nothing(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    path = "/v1/admin/subscribers/acc-7"
    async with running_daemon(settings) as daemon:
        answers = [
            await call(daemon, "PUT", path, token=None, json={}),
            await call(daemon, "PUT", path, token="guess", json={}),
            await call(daemon, "PATCH", path, token=READ_TOKEN, json={"name": "X"}),
            await call(daemon, "PATCH", path, json={"name": "X"}),  # no such subscriber
            await call(daemon, "PUT", path, json={"email": "nope"}),
        ]
    assert [status for status, _ in answers] == [401, 401, 403, 404, 422]
    assert await audit_rows(db) == []


async def test_a_route_added_later_is_audited_without_doing_anything(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the restriction route another part of the issue adds: a scope, no action, no note.
    later = Routes(admin=True)

    @later.put("/subscribers/{account_id}/restriction", "Restrict", scope="privacy", answers={})
    async def restrict(request: web.Request) -> web.Response:
        return web.json_response({}, status=200)

    # A read that is recorded because its route names an action, as an export's does.
    @later.get(
        "/subscribers/{account_id}/export",
        "Export",
        scope="privacy",
        action="subscriber.exported",
        answers={},
    )
    async def export(request: web.Request) -> web.Response:
        return web.json_response({}, status=200)

    monkeypatch.setattr(
        admin_app, "RESOURCES", (SimpleNamespace(routes=later), *admin_app.RESOURCES)
    )
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        refused = await call(daemon, "PUT", "/v1/admin/subscribers/acc-3/restriction", READ_TOKEN)
        done = await call(daemon, "PUT", "/v1/admin/subscribers/acc-3/restriction")
        exported = await call(daemon, "GET", "/v1/admin/subscribers/acc-3/export")
        looked_up = await call(daemon, "GET", "/v1/admin/subscribers/acc-3")
    assert (refused[0], done[0], exported[0], looked_up[0]) == (403, 200, 200, 404)
    assert await audit_rows(db) == [
        ("ops", "PUT /v1/admin/subscribers/{account_id}/restriction", "acc-3", {}),
        ("ops", "subscriber.exported", "acc-3", {}),
    ]


async def test_the_audit_api_pages_newest_first_and_filters_by_account_and_action(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        for account in ("acc-1", "acc-2"):
            await daemon.post("billing", sample_event("account.created", account), BILLING_SECRET)
        for index in range(4):
            for account in ("acc-1", "acc-2"):
                body = {"name": f"N{index}"}
                await call(daemon, "PATCH", f"/v1/admin/subscribers/{account}", json=body)
        await call(daemon, "PATCH", "/v1/admin/subscribers/acc-1/preferences", json={})
        pages, before = [], ""
        while True:
            status, page = await call(daemon, "GET", f"/v1/admin/audit?limit=3{before}", READ_TOKEN)
            assert status == 200
            pages.append(page["entries"])
            if len(page["entries"]) < 3:
                break
            before = "&before=" + page["entries"][-1]["at"].replace("+", "%2B")
        of_one = await call(daemon, "GET", "/v1/admin/audit?account_id=acc-2", READ_TOKEN)
        action = "/v1/admin/audit?action=preferences.changed&account_id=acc-1"
        of_action = await call(daemon, "GET", action, READ_TOKEN)
        refused = await call(daemon, "GET", "/v1/admin/audit", BROADCAST_TOKEN)
    entries = [entry for page in pages for entry in page]
    assert [len(page) for page in pages] == [3, 3, 3, 0]
    stored = await db.fetch("SELECT id FROM audit ORDER BY at DESC, id DESC")
    assert [entry["id"] for entry in entries] == [row["id"] for row in stored]
    assert entries[0]["action"] == "preferences.changed"
    assert {entry["actor"] for entry in entries} == {"ops"}
    assert [entry["account_id"] for entry in of_one[1]["entries"]] == ["acc-2"] * 4
    assert [entry["detail"] for entry in of_one[1]["entries"]] == [{"fields": ["name"]}] * 4
    assert [entry["action"] for entry in of_action[1]["entries"]] == ["preferences.changed"]
    assert refused[0] == 403


async def test_the_table_is_append_only_and_purge_audit_deletes_old_rows_in_batches(
    db: asyncpg.Connection,
) -> None:
    now = datetime.now(UTC)
    await db.execute(
        "INSERT INTO audit (at, actor, action)"
        " SELECT $1::timestamptz - make_interval(days => d), 'cli', 'x'"
        " FROM generate_series(1, 10) AS d",
        now - timedelta(days=729),
    )
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await db.execute("UPDATE audit SET actor = 'someone else'")
    cut_off = now - timedelta(days=730)
    deleted = [await audit_store.purge(db, cut_off, 4) for _ in range(4)]
    assert deleted == [4, 4, 1, 0]
    assert await db.fetchval("SELECT count(*) FROM audit") == 1  # 729 days old: kept


def test_no_code_but_purge_audit_updates_or_deletes_audit_rows() -> None:
    writes = re.compile(r"(UPDATE\s+audit\b|DELETE\s+FROM\s+audit\b)", re.IGNORECASE)
    found = [
        (path.relative_to(ROOT).as_posix(), match.group(0))
        for path in (ROOT / "notifyd").rglob("*")
        if path.suffix in (".py", ".sql") and "migrations" not in path.parts
        for match in writes.finditer(path.read_text(encoding="utf-8"))
    ]
    assert found == [("notifyd/storage/sql/audit.sql", "DELETE FROM audit")]


@pytest.mark.parametrize(
    "detail",
    [
        {"email": ADDRESS},
        {"fields": ["name", NAME]},
        {"number": PHONE},
        {"reason": "called in"},
        {"a b": 1},
    ],
)
def test_a_detail_that_could_hold_personal_data_is_refused(detail: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="refused"):
        audit_store.checked(detail)
