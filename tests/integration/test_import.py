"""Bulk import: streamed, idempotent, per-row errors, valid rows kept, suppression kept."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg

from tests.conftest import load_config, running_daemon
from tests.integration.admin_support import admin_config, call, post_import

CSV = """account_id,email,name,language,marketing
acc-1,ana@client.example,Ana Popescu,ro,true
acc-2,not-an-address,Ion,ro,
acc-3,"maria@client.example","Ionescu, Maria",en,false
acc-4,dan@client.example,Dan,fr,
"""


async def test_csv_import_keeps_valid_rows_and_names_the_bad_ones(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        first = await post_import(daemon, CSV.encode(), "text/csv")
        again = await post_import(daemon, CSV.encode(), "text/csv")
        maria = await call(daemon, "GET", "/v1/admin/subscribers/acc-3")
    assert first[0] == 207
    assert (first[1]["imported"], first[1]["failed"]) == (2, 2)
    assert [(e["line"], set(e["fields"])) for e in first[1]["errors"]] == [
        (3, {"email"}),
        (5, {"language"}),
    ]
    assert again[1]["imported"] == 2  # the same file twice: the same result
    assert await db.fetchval("SELECT count(*) FROM subscribers") == 2
    assert maria[1]["name"] == "Ionescu, Maria"
    # Consent recorded once (not again on the re-import), as an import.
    rows = await db.fetch("SELECT account_id, granted, source FROM consent_events ORDER BY id")
    assert [(r["account_id"], r["granted"], r["source"]) for r in rows] == [
        ("acc-1", True, "import"),
    ]
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 1  # maria said false


async def test_an_import_never_puts_an_unsubscribed_address_back_on_marketing(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await post_import(daemon, CSV.encode(), "text/csv")
        await call(
            daemon,
            "POST",
            "/v1/admin/subscribers/acc-1/consent",
            json={"marketing": False, "source": "unsubscribe-link", "wording_version": "v1"},
        )
        _, result = await post_import(daemon, CSV.encode(), "text/csv")
        state = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert result["imported"] == 2
    assert state[1]["marketing"]["consent"] is True  # the file says true, recorded...
    assert state[1]["marketing"]["sendable"] is False  # ...but the address stays suppressed


async def test_json_lines_import_and_unsupported_formats(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    lines = [
        json.dumps({"account_id": f"acc-{n}", "email": f"user{n}@client.example"})
        for n in range(1200)  # more than one batch
    ]
    lines.insert(5, "{not json")
    lines.insert(9, json.dumps(["a", "list"]))
    body = ("\n".join(lines) + "\n").encode()
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        status, result = await post_import(daemon, body, "application/x-ndjson")
        refused = await post_import(daemon, b"<xml/>", "application/xml")
    assert status == 207
    assert (result["imported"], result["failed"]) == (1200, 2)
    assert [e["line"] for e in result["errors"]] == [6, 10]
    assert await db.fetchval("SELECT count(*) FROM subscribers") == 1200
    assert refused[0] == 415


async def test_consent_from_an_import_names_the_token_that_imported_it(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    """The consent history says which token recorded each grant and withdrawal
    (docs/admin-api.md, "Marketing consent"): one from a file names the token that sent it,
    as one from POST .../consent does; it was null, so nobody could say who had imported a
    grant that let offers go out."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await post_import(daemon, CSV.encode(), "text/csv")
        status, listed = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/consent")
    assert status == 200
    assert [(e["source"], e["recorded_by"]) for e in listed["history"]] == [("import", "ops")]
    rows = await db.fetch("SELECT recorded_by FROM consent_events")
    assert [row["recorded_by"] for row in rows] == ["ops"]


async def test_a_file_separated_by_semicolons_or_tabs_is_told_to_use_commas(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    """A spreadsheet set to Romanian saves "CSV" with semicolons (the comma is its decimal
    mark), and "text" with tabs: the answer names the separator and what to do, where it
    said only "unknown column 'account_id;email'"."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        semicolons = await post_import(
            daemon, b"\xef\xbb\xbfaccount_id;email\r\nacc-1;ana@client.example\r\n", "text/csv"
        )
        tabs = await post_import(
            daemon, b"account_id\temail\nacc-1\tana@client.example\n", "text/csv"
        )
    for (status, body), separator in ((semicolons, "';'"), (tabs, "a tab")):
        assert (status, body["error"], body["imported"]) == (422, "invalid_header", 0)
        assert f"the columns are separated by {separator}: save the file as CSV" in body["detail"]
        assert "with commas" in body["detail"]
    assert await db.fetchval("SELECT count(*) FROM subscribers") == 0
