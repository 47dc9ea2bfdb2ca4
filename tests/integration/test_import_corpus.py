"""The import's hostile-input corpus: every file says exactly which rows were imported and
which lines were not (with why), bad input is a 4xx naming its line, and a pathological file
never stalls the daemon."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import Running, eventually, load_config, running_daemon
from tests.integration.admin_support import OPS_TOKEN, admin_config, post_import

HEADER = b"account_id,email,name\n"


def row(n: int, name: str = "Ana") -> bytes:
    return f"acc-{n},user{n}@client.example,{name}\n".encode()


def rows(first: int, last: int) -> bytes:
    return b"".join(row(n) for n in range(first, last + 1))


@dataclass(frozen=True)
class Case:
    body: bytes
    status: int
    imported: set[str]
    # (line, last line or None, each a word the reason must contain), in order.
    reported: list[tuple[int, int | None, str]] = field(default_factory=list)
    # For a refused file (4xx): the line named and a word of the detail.
    refused: tuple[int, str] | None = None
    names: dict[str, str] = field(default_factory=dict)
    # Rows read from several lines (a quoted field spans them): (line, last line).
    multi_line: list[tuple[int, int]] = field(default_factory=list)


def accounts(first: int, last: int) -> set[str]:
    return {f"acc-{n}" for n in range(first, last + 1)}


UNCLOSED_FIELD = b'acc-4,"user4@client.example,Ana\n'

CORPUS: dict[str, Case] = {
    # Line 4 opens a quote that nothing closes: the 20,000 lines after it are one field. Rows
    # before it are kept; the answer names line 4, where the quote began.
    "unterminated quote before 20,000 lines": Case(
        HEADER + rows(2, 3) + UNCLOSED_FIELD + rows(5, 20_004),
        400,
        accounts(2, 3),
        refused=(4, "quote"),
    ),
    "unterminated quote at the end of the file": Case(
        HEADER + rows(2, 3) + UNCLOSED_FIELD + rows(5, 6),
        400,
        accounts(2, 3),
        refused=(4, "quote"),
    ),
    # A quote inside an unquoted field is a character of it (as spreadsheets read it): it
    # neither swallows the next rows nor loses this one.
    "stray quotes in the middle of unquoted fields": Case(
        HEADER
        + row(2)
        + b'acc-3,user3@client.example,Ion "Johnny Pop\n'
        + rows(4, 5)
        + b'acc-6,user6@client.example,Ion "Johnny" Pop\n'
        + row(7),
        200,
        accounts(2, 7),
        names={"acc-3": 'Ion "Johnny Pop', "acc-6": 'Ion "Johnny" Pop'},
    ),
    # Text after a closing quote, or a lone quote inside a quoted field: that line is
    # reported, and the next rows are read as they are.
    "stray quotes after or inside a quoted field": Case(
        HEADER
        + row(2)
        + b'acc-3,"user3@client.example"x,Ana\n'
        + row(4)
        + b'acc-5,user5@client.example,"Ion "Johnny" Pop"\n'
        + row(6),
        207,
        {"acc-2", "acc-4", "acc-6"},
        reported=[(3, None, "quote"), (5, None, "quote")],
    ),
    # A quote opened on line 3 and closed by the quote that opens a field on line 5: lines 3-5
    # are one broken record, reported with both lines, so none of them is lost in silence.
    "a stray quote closed by a quote on a later line": Case(
        HEADER
        + row(2)
        + b'acc-3,user3@client.example,"Ana\n'
        + row(4)
        + b'acc-5,user5@client.example,"Ionescu, Maria"\n'
        + row(6),
        207,
        {"acc-2", "acc-6"},
        reported=[(3, 5, "line 3")],
    ),
    # Closed at the end of a field on line 5, lines 3-5 are valid CSV: one row whose name
    # holds lines 4 and 5. Nothing can tell it from a name written on three lines, so it is
    # imported and named in the answer as a row read from lines 3 to 5.
    "a stray quote closed at the end of a later line": Case(
        HEADER
        + row(2)
        + b'acc-3,user3@client.example,"Ana\n'
        + row(4)
        + b'acc-5,user5@client.example,Ana"\n'
        + row(6),
        200,
        {"acc-2", "acc-3", "acc-6"},
        multi_line=[(3, 5)],
    ),
    # ... unless the joined text is no valid value: then it is reported with its lines.
    "a stray quote that joins lines into a name too long": Case(
        HEADER
        + row(2)
        + b'acc-3,user3@client.example,"Ana\n'
        + b"".join(row(n, "Popescu" * 10) for n in range(4, 7))
        + b'acc-7,user7@client.example,Ana"\n'
        + row(8),
        207,
        {"acc-2", "acc-8"},
        reported=[(3, 7, "name")],
    ),
    # Quotes may span lines and be doubled: the next row keeps its own line number.
    "quotes that span lines legitimately": Case(
        HEADER
        + row(2)
        + b'acc-3,user3@client.example,"Ana\nMaria ""Mia"" Pop"\n'
        + b"acc-5,not-an-address,Ion\n"
        + b'acc-6,user6@client.example,"Ionescu, Maria"\n',
        207,
        {"acc-2", "acc-3", "acc-6"},
        reported=[(5, None, "email")],
        names={"acc-3": 'Ana Maria "Mia" Pop', "acc-6": "Ionescu, Maria"},
        multi_line=[(3, 4)],
    ),
    "CRLF line ends": Case(
        (HEADER + row(2) + b'acc-3,user3@client.example,"A\nB"\n' + b"acc-5,bad,Ion\n").replace(
            b"\n", b"\r\n"
        ),
        207,
        accounts(2, 3),
        reported=[(5, None, "email")],
        names={"acc-3": "A B"},
        multi_line=[(3, 4)],
    ),
    "CR line ends": Case(
        (HEADER + row(2) + b'acc-3,user3@client.example,"A\nB"\n' + b"acc-5,bad,Ion").replace(
            b"\n", b"\r"
        ),
        207,
        accounts(2, 3),
        reported=[(5, None, "email")],
        names={"acc-3": "A B"},
        multi_line=[(3, 4)],
    ),
    "LF line ends, no newline at the end": Case(
        HEADER + row(2) + b"acc-3,bad,Ion\n" + row(4).rstrip(b"\n"),
        207,
        {"acc-2", "acc-4"},
        reported=[(3, None, "email")],
    ),
    "mixed line ends": Case(
        b"account_id,email,name\r\n" + b"acc-2,user2@client.example,A\r" + row(3) + b"acc-4,x,B",
        207,
        accounts(2, 3),
        reported=[(4, None, "email")],
    ),
    "a byte order mark": Case(
        b"\xef\xbb\xbf" + HEADER + rows(2, 3),
        200,
        accounts(2, 3),
    ),
    "invalid UTF-8 in the header": Case(
        b"account_id,em\xffail,name\n" + rows(2, 3), 400, set(), refused=(1, "UTF-8")
    ),
    "invalid UTF-8 in a row": Case(
        HEADER + row(2) + b"acc-3,user3@client.example,Ana \xc3\x28\n" + row(4),
        400,
        {"acc-2"},
        refused=(3, "UTF-8"),
    ),
    "invalid UTF-8 cut at the end of the file": Case(
        HEADER + rows(2, 3) + b"acc-4,user4@client.example,Ana \xe2\x82",
        400,
        accounts(2, 3),
        refused=(4, "UTF-8"),
    ),
    "UTF-16 saved by a spreadsheet": Case(
        b"\xff\xfe" + HEADER.decode().encode("utf-16-le"), 400, set(), refused=(1, "UTF-8")
    ),
    "a 200 KB field": Case(
        HEADER + row(2) + b"acc-3,user3@client.example," + b"x" * 200_000 + b"\n" + row(4),
        400,
        {"acc-2"},
        refused=(3, "16 KiB"),
    ),
    "a 200 KB quoted field across lines": Case(
        HEADER + row(2) + b'acc-3,user3@client.example,"' + b"x\n" * 100_000 + b'"\n' + row(4),
        400,
        {"acc-2"},
        refused=(3, "16 KiB"),
    ),
    "an empty file": Case(b"", 422, set(), refused=(1, "header")),
    "only blank lines": Case(b"\n\r\n\n", 422, set(), refused=(1, "header")),
    "only a header": Case(HEADER, 200, set()),
    "a header with an unknown column": Case(
        b"account_id,email,nmae\n" + rows(2, 3), 422, set(), refused=(1, "nmae")
    ),
    "a header with a duplicate column": Case(
        b"account_id,email,Email\n" + rows(2, 3), 422, set(), refused=(1, "email")
    ),
    "a header without a required column": Case(
        b"account_id,name\nacc-2,Ana\n", 422, set(), refused=(1, "email")
    ),
    "a header with an unnamed column": Case(
        b"account_id,email,\n" + rows(2, 3), 422, set(), refused=(1, "column 3")
    ),
    "NUL bytes": Case(
        HEADER
        + row(2)
        + b"acc-3,user3@client.example,An\x00a\n"
        + b"acc-\x004,user4@client.example,Ana\n"
        + row(5),
        207,
        # A name takes its NUL as a space, as names take every control character.
        {"acc-2", "acc-3", "acc-5"},
        reported=[(4, None, "account_id")],
    ),
    "blank and comma-only lines are not rows": Case(
        HEADER + b"\n" + row(3) + b",,\n" + row(5),
        200,
        {"acc-3", "acc-5"},
    ),
    "several batches, a bad row in the second": Case(
        HEADER + rows(2, 700) + b"acc-701,bad,Ana\n" + rows(702, 1201),
        207,
        accounts(2, 1201) - {"acc-701"},
        reported=[(701, None, "email")],
    ),
    "a row with too many columns": Case(
        HEADER + b"acc-2,user2@client.example,Ana,extra\n" + row(3),
        207,
        {"acc-3"},
        reported=[(2, None, "columns")],
    ),
}


async def stored_accounts(db: asyncpg.Connection) -> set[str]:
    return {r["account_id"] for r in await db.fetch("SELECT account_id FROM subscribers")}


def reason_text(error: dict[str, Any]) -> str:
    return " ".join(f"{key} {value}" for key, value in error["fields"].items())


@pytest.mark.parametrize("case", CORPUS.values(), ids=CORPUS.keys())
async def test_csv_corpus_imports_exactly_the_good_rows_and_reports_every_other_line(
    case: Case, tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        status, result = await post_import(daemon, case.body, "text/csv")
    assert status == case.status, result
    assert await stored_accounts(db) == case.imported
    assert result["imported"] == len(case.imported)
    reported = [(e["line"], e.get("last_line")) for e in result["errors"]]
    assert reported == [(line, last) for line, last, _ in case.reported], result
    for error, (_, _, word) in zip(result["errors"], case.reported, strict=True):
        assert word.lower() in reason_text(error).lower(), error
    assert result["failed"] == len(case.reported)
    assert [(r["line"], r["last_line"]) for r in result["multi_line_rows"]] == case.multi_line
    if case.refused is not None:
        line, word = case.refused
        assert result["line"] == line, result
        assert result["detail"].startswith(f"line {line}: "), result
        assert word.lower() in result["detail"].lower(), result
    else:
        assert "line" not in result
    for account, name in case.names.items():
        assert (
            await db.fetchval("SELECT name FROM subscribers WHERE account_id = $1", account) == name
        )


@pytest.mark.parametrize(
    ("body", "line", "word"),
    [
        (b'{"account_id": "acc-1", "email": "user1@client.example"}\n\xff\n', 2, "UTF-8"),
        (
            b'{"account_id": "acc-1", "email": "user1@client.example", "name": "'
            + b"x" * 200_000
            + b'"}\n',
            1,
            "longer",
        ),
    ],
    ids=["invalid UTF-8", "a 200 KB line"],
)
async def test_json_lines_bad_input_is_a_4xx_naming_the_line(
    body: bytes, line: int, word: str, tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        status, result = await post_import(daemon, body, "application/x-ndjson")
    assert status == 400
    assert result["line"] == line
    assert word.lower() in result["detail"].lower()


async def test_json_lines_with_nul_characters_are_reported_not_stored(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    body = (
        b'{"account_id": "acc-1", "email": "user1@client.example", "username": "a\\u0000na"}\n'
        b'{"account_id": "acc-2", "email": "user2@client.example"}\n'
    )
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        status, result = await post_import(daemon, body, "application/x-ndjson")
    assert status == 207
    assert [e["line"] for e in result["errors"]] == [1]
    assert "username" in reason_text(result["errors"][0])
    assert await stored_accounts(db) == {"acc-2"}


async def healthz_while(daemon: Running, work: asyncio.Task[Any]) -> list[float]:
    """How long each /healthz took, asked again and again until `work` is done."""
    took: list[float] = []
    while not work.done():
        started = time.monotonic()
        async with asyncio.timeout(2), daemon.session.get(f"{daemon.base_url}/healthz") as answer:
            assert answer.status == 200
        took.append(time.monotonic() - started)
        await asyncio.sleep(0.02)
    return took


async def test_the_daemon_stays_alive_while_a_pathological_import_runs(
    tmp_path: Path, database_url: str
) -> None:
    body = CORPUS["unterminated quote before 20,000 lines"].body
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        work = asyncio.create_task(post_import(daemon, body, "text/csv"))
        try:
            await asyncio.sleep(0.01)  # the import's request is on its way first
            took = await healthz_while(daemon, work)
        finally:
            status, _ = await asyncio.wait_for(work, 15)
    assert status == 400
    assert took  # /healthz answered (each within 2 s) while the import ran


async def test_an_import_cut_off_midway_keeps_its_written_batches_and_the_daemon_well(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    body = HEADER + rows(2, 1001)  # two batches of 500
    head = (
        "POST /v1/admin/subscribers/import HTTP/1.1\r\nHost: notifyd\r\n"
        f"Authorization: Bearer {OPS_TOKEN}\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body) + 100_000}\r\n\r\n"
    ).encode()

    async def batches_written() -> bool:
        return bool(await db.fetchval("SELECT count(*) FROM subscribers") == 1000)

    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        _, writer = await asyncio.open_connection("127.0.0.1", daemon.daemon.admin_port)
        writer.write(head + body)
        await writer.drain()
        # Streamed: the batches are written while the rest of the body is still awaited.
        await eventually(batches_written, "both batches written")
        writer.close()
        await writer.wait_closed()
        async with asyncio.timeout(2), daemon.session.get(f"{daemon.base_url}/healthz") as answer:
            assert answer.status == 200
    # Leaving the block stopped the daemon: the import's thread did not keep it waiting.
    assert await stored_accounts(db) == accounts(2, 1001)
