"""The export of everything held about an account (SPEC §2): the admin API's and the CLI's,
validated against the JSON Schema served beside the OpenAPI document, and complete: a table
holding account data that the export does not name fails here."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import asyncpg
import jsonschema_rs

from notifyd.catalogue.samples import sample_event
from notifyd.storage import export
from tests.conftest import SmtpSink, load_config, running_daemon, write_config
from tests.integration.admin_support import OPS_TOKEN, admin_config, call
from tests.integration.catalogue_support import post_ok
from tests.integration.privacy_support import (
    ACCOUNT,
    CALLER,
    EMAIL,
    OFFICE,
    TRANSCRIPT,
    build_account,
    notifyd_command,
    sending_config,
)


async def test_the_export_holds_every_kind_of_data_and_matches_its_schema(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    config = sending_config(tmp_path, database_url, smtp_sink)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await build_account(daemon, smtp_sink, db)
        async with daemon.session.get(f"{daemon.admin_url}/export.schema.json") as got:
            assert got.status == 200
            schema = await got.json(content_type="application/schema+json")
        async with daemon.session.get(
            f"{daemon.admin_url}/v1/admin/subscribers/{ACCOUNT}/export",
            headers={"Authorization": f"Bearer {OPS_TOKEN}"},
        ) as got:
            assert got.status == 200
            assert got.headers["Transfer-Encoding"] == "chunked"  # streamed, not built whole
            served = json.loads(await got.read())
    errors = [str(e) for e in jsonschema_rs.validator_for(schema).iter_errors(served)]
    assert errors == []

    assert served["subscriber"]["email"] == EMAIL
    assert served["subscriber"]["preferences"]["addresses"] == {"fax": [OFFICE]}
    addresses = {a["address"]: a for a in served["addresses"]}
    assert set(addresses) == {EMAIL, OFFICE}
    assert [s["list"] for s in addresses[EMAIL]["suppressions"]] == ["marketing"]
    assert addresses[OFFICE]["health"]["hard_bounces"] == 1
    assert [c["granted"] for c in served["consent_history"]] == [True, False]
    assert {e["type"] for e in served["events"]} >= {"call.missed", "voicemail.received"}
    missed = next(e for e in served["events"] if e["type"] == "call.missed")
    assert missed["data"]["caller_number"] == CALLER
    voicemail = next(e for e in served["events"] if e["type"] == "voicemail.received")
    assert voicemail["data"]["transcript"] == TRANSCRIPT
    assert "data_base64" not in voicemail["data"]["audio"]  # the bytes: never in the event
    kinds = {a["role"]: a for a in served["attachments"]}
    assert set(kinds) == {"audio", "document"}
    assert kinds["audio"]["content_held"] is True
    assert "content" not in kinds["audio"]
    assert "Not included" in served["attachment_bytes"]
    states = {(n["kind"], n["state"]) for n in served["notices"]}
    assert {("call.missed", "held"), ("fax.received", "failed")} <= states
    assert ("billing.payment_confirmed", "sent") in states
    sent = next(n for n in served["notices"] if n["kind"] == "voicemail.received")
    assert sent["smtp_reply"] == "2.0.0 Ok: queued"
    assert served["credit_states"][0]["balance"] == 80
    assert [b["balance"] for b in served["balance_history"]] == [53.2, 80]  # credit, update
    (month,) = served["credit_statements"]
    assert (month["closing"], month["top_ups"], month["payments"]) == (80, 1, 1)

    # The CLI writes the same document (but for the moment it was made).
    code, _, err = await notifyd_command(
        write_config(tmp_path / "cli.toml", config),
        "privacy",
        "export",
        ACCOUNT,
        "--output",
        str(tmp_path / "export.json"),
    )
    assert code == 0, err
    written = json.loads((tmp_path / "export.json").read_text("utf-8"))
    # The same document, but that the API's export is in the trail by then.
    assert [a["action"] for a in served["audit"]][-1:] == ["consent.withdrawn"]
    assert [a["action"] for a in written["audit"]] == [
        *(a["action"] for a in served["audit"]),
        "subscriber.exported",
    ]
    same = {"exported_at": None, "audit": None}
    assert {**written, **same} == {**served, **same}


async def test_every_table_holding_account_data_has_a_place_in_the_export(
    db: asyncpg.Connection,
) -> None:
    """A table with an account_id or an address column, or a key to one that has, is
    exported or named as not exported with why: a table added without either fails here."""
    rows = await db.fetch(
        "SELECT c.table_name FROM information_schema.columns AS c"
        " JOIN information_schema.tables AS t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
        " AND c.column_name IN ('account_id', 'address', 'recipient', 'email')"
    )
    holding = {row["table_name"] for row in rows}
    references = await db.fetch(
        "SELECT conrelid::regclass::text AS source, confrelid::regclass::text AS target"
        " FROM pg_constraint WHERE contype = 'f'"
    )
    while True:  # tables whose rows belong to those rows
        more = {r["source"] for r in references if r["target"] in holding} - holding
        if not more:
            break
        holding |= more
    placed = set(export.TABLES) | set(export.NOT_EXPORTED)
    assert holding - placed == set(), "add each to export.TABLES (and its section's query)"
    queries = {name: export.SQL[query] for name, query, _ in export.SECTIONS}
    for table, section in export.TABLES.items():
        assert f"FROM {table} AS" in queries[section], (table, section)


async def test_an_unknown_account_is_a_404_and_a_clear_exit(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        status, body = await call(daemon, "GET", "/v1/admin/subscribers/ghost/export")
    assert status == 404
    assert body["detail"] == "no subscriber 'ghost'"
    code, out, err = await notifyd_command(
        write_config(tmp_path / "cli.toml", config), "privacy", "export", "ghost"
    )
    assert (code, out) == (67, "")
    assert "nothing is held about account 'ghost'" in err


async def test_the_cli_export_to_a_file_is_the_owners_alone_and_failing_outputs_are_one_line(
    tmp_path: Path, database_url: str
) -> None:
    """What an operator meets writing an export: the file holds a subscriber's data, so only
    its owner reads it; no file at all for an unknown account; a folder that does not
    exist, a full disk or a reader that went away (`| head`) is one line, not a traceback."""
    config = admin_config(tmp_path, database_url, None)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await post_ok(daemon, sample_event("account.created", "acc-out"))
    path = write_config(tmp_path / "cli.toml", config)

    target = tmp_path / "acc-out.json"
    code, _, err = await notifyd_command(path, "privacy", "export", "acc-out", "-o", str(target))
    assert code == 0, err
    assert json.loads(target.read_text(encoding="utf-8"))["account_id"] == "acc-out"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    ghost = tmp_path / "ghost.json"
    assert (await notifyd_command(path, "privacy", "export", "ghost", "-o", str(ghost)))[0] == 67
    assert not ghost.exists()
    assert [name for name in os.listdir(tmp_path) if name.startswith(".")] == []  # no part left

    nowhere = tmp_path / "no-such-folder" / "acc-out.json"
    code, _, err = await notifyd_command(path, "privacy", "export", "acc-out", "-o", str(nowhere))
    assert code == 73
    assert err.strip().splitlines()[-1] == (
        f"notifyd privacy export: cannot write {nowhere}: No such file or directory"
    )
    assert "Traceback" not in err

    full = os.open("/dev/full", os.O_WRONLY)  # a disk that is full
    try:
        code, _, err = await notifyd_command(path, "privacy", "export", "acc-out", stdout=full)
    finally:
        os.close(full)
    assert code == 73
    assert "cannot write to standard output: No space left on device" in err
    assert "Traceback" not in err

    reader, writer = os.pipe()
    os.close(reader)  # the reader went away, as `| head` does after its lines
    try:
        code, _, err = await notifyd_command(path, "privacy", "export", "acc-out", stdout=writer)
    finally:
        os.close(writer)
    assert code == 141
    assert "Traceback" not in err
