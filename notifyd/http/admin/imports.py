"""POST /v1/admin/subscribers/import: CSV or JSON lines, streamed.

Rows are read as they arrive and written in batches of `BATCH` rows, each batch in its own
transaction, so a million-row file neither sits in memory nor holds one huge transaction.
Importing the same file twice gives the same result. Each invalid row is reported with its
line number and fields; the valid rows are kept. A file that cannot be read on (not UTF-8, a
line over the limit, a quote never closed: `notifyd.intake.subscriber_files`) is answered 400
naming the line, its rows before that line kept; a header that does not name the columns is a 422.
Consent given in a file is recorded with source "import", which never takes an address off
the suppression list; an address erased before (storage/erasure.py) is put back on it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import asyncpg
import pydantic
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from notifyd import unstorable
from notifyd.catalogue.fields import (
    DisplayText,
    EmailAddress,
    Identifier,
    Language,
    Text,
    TimeZoneName,
)
from notifyd.http.admin.recording import note
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.errors import Error, Problem
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, absent, respond
from notifyd.intake import consent
from notifyd.intake.subscriber_files import BadFile, Record, csv_records, json_lines_records
from notifyd.model import Subscriber
from notifyd.storage import consent as consent_store
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)

BATCH = 500
MAX_REPORTED_ERRORS = 1000
CSV_TYPES = ("text/csv", "application/csv")
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")

routes = Routes(admin=True)


class ImportRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_id: Identifier
    email: EmailAddress
    username: Text | None = None
    name: DisplayText | None = None
    language: Language | None = None
    timezone: TimeZoneName | None = None
    marketing: StrictBool | None = None
    wording_version: Identifier | None = None


class RowRefused(Reply):
    line: int
    fields: dict[str, str] = Field(description="Each field that is wrong, and why")
    last_line: int | None = Field(
        default=None, exclude_if=absent, description="Where a row read from several lines ends"
    )


class Lines(Reply):
    line: int
    last_line: int


class Imported(Reply):
    """What an import did: the rows imported, and each row refused with its line."""

    imported: int
    failed: int
    errors: list[RowRefused] = Field(description=f"The first {MAX_REPORTED_ERRORS} refused")
    # Records whose quoted field spans lines: imported, and named so that rows a stray
    # quote joined to them are not lost in silence.
    multi_line_rows: list[Lines] = Field(
        description="Rows read from several lines (a quoted field holding a line break)"
    )


class ImportRefused(Imported, Error):
    """A file that cannot be read on at `line`, and what was imported before it."""

    line: int


class _Importer:
    """One import, run in a worker thread: reading, parsing and validating are CPU work that
    would stall the event loop (a million rows, or a quote never closed). The thread asks the
    loop for each chunk of the body and hands it each batch to write, so the body is still
    streamed and batches are still written as they fill."""

    def __init__(
        self, request: web.Request, pool: asyncpg.Pool, content_type: str, erasure_key: bytes
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._content = request.content
        self._pool = pool
        self._erasure_key = erasure_key
        self._content_type = content_type
        # The consent history names the token that recorded each grant or withdrawal.
        self._token_name: str = request[TOKEN_NAME]
        # Set when the request is abandoned (client gone, shutdown): the thread stops at its
        # next chunk or batch instead of importing for nobody.
        self.abandoned = threading.Event()
        self.imported = Imported(imported=0, failed=0, errors=[], multi_line_rows=[])
        # The line that cannot be read on, if the file has one.
        self.refused: BadFile | None = None

    def run(self) -> None:
        chunks = self._chunks()
        records = (
            csv_records(chunks, ImportRow.model_fields)
            if self._content_type in CSV_TYPES
            else json_lines_records(chunks)
        )
        batch: list[ImportRow] = []
        try:
            for record in records:
                row = self._row(record)
                if row is not None:
                    batch.append(row)
                if len(batch) >= BATCH:
                    self._write(batch)
        except BadFile as error:
            self.refused = error
        # Rows before a line that cannot be read are kept, as the answer says.
        if batch:
            self._write(batch)

    def _row(self, record: Record) -> ImportRow | None:
        problem: dict[str, str]
        if record.values is None:
            problem = {"line": record.problem or "is not a row"}
        else:
            try:
                row = ImportRow.model_validate(record.values)
            except pydantic.ValidationError as error:
                problem = {
                    ".".join(str(p) for p in item["loc"]) or "row": item["msg"].removeprefix(
                        "Value error, "
                    )
                    for item in error.errors(include_url=False)
                }
            else:
                # A NUL (PostgreSQL cannot store it) is named on its field; names took
                # theirs as a space when they were validated.
                problem = unstorable.found(row)
                if not problem:
                    if (
                        record.last_line > record.line
                        and len(self.imported.multi_line_rows) < MAX_REPORTED_ERRORS
                    ):
                        self.imported.multi_line_rows.append(
                            Lines(line=record.line, last_line=record.last_line)
                        )
                    return row
        self.imported.failed += 1
        if len(self.imported.errors) < MAX_REPORTED_ERRORS:
            spans = record.last_line > record.line
            self.imported.errors.append(
                RowRefused(
                    line=record.line, fields=problem, last_line=record.last_line if spans else None
                )
            )
        return None

    def _chunks(self) -> Iterator[bytes]:
        while not self.abandoned.is_set():
            chunk = asyncio.run_coroutine_threadsafe(self._content.readany(), self._loop).result()
            if not chunk:
                return
            yield chunk
        raise _Abandoned

    def _write(self, batch: list[ImportRow]) -> None:
        if self.abandoned.is_set():
            raise _Abandoned
        rows = list(batch)
        batch.clear()
        asyncio.run_coroutine_threadsafe(self._save_batch(rows), self._loop).result()
        self.imported.imported += len(rows)

    async def _save_batch(self, rows: list[ImportRow]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            for row in rows:
                await _save(conn, row, self._erasure_key, self._token_name)


class _Abandoned(Exception):
    """The request went away: the import thread stops."""


@routes.post(
    "/subscribers/import",
    "Create or update subscribers from CSV or JSON lines",
    scope="subscribers",
    action="subscribers.imported",
    description="Streamed and written in batches; idempotent. Columns/keys: account_id, email, "
    "username?, name?, language?, timezone?, marketing?, wording_version?. Consent from a file "
    "is recorded with source 'import' and never lifts a suppression.",
    other_bodies={media: {"type": "string"} for media in CSV_TYPES + JSONL_TYPES},
    answers={
        200: Answer("All rows imported", Imported),
        207: Answer("Some rows refused; the others imported", Imported),
        400: Answer(
            "A line cannot be read (not UTF-8, over 16 KiB, a quote never closed); the rows "
            "before it imported",
            ImportRefused,
        ),
        415: error("Neither CSV nor JSON lines"),
        422: Answer("The CSV header does not name the columns", ImportRefused),
    },
)
async def import_subscribers(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    content_type = request.content_type
    if content_type not in CSV_TYPES + JSONL_TYPES:
        raise Problem(
            415, "unsupported_media_type", "send text/csv or application/x-ndjson (JSON lines)"
        )
    importer = _Importer(request, runtime.pool, content_type, runtime.erasure_key)
    try:
        await asyncio.to_thread(importer.run)
    finally:
        importer.abandoned.set()
    imported, refused = importer.imported, importer.refused
    # Counts only, recorded also when a bad line stopped the import after some rows.
    note(request, imported=imported.imported, failed=imported.failed)
    if refused is not None:
        log.warning(
            "subscriber import refused",
            line=refused.line,
            header=refused.header,
            imported=imported.imported,
            failed=imported.failed,
            format=content_type,
        )
        # The body ImportRefused describes: the error, then the line and the counts.
        raise Problem(
            422 if refused.header else 400,
            "invalid_header" if refused.header else "unreadable_file",
            str(refused),
            extra={"line": refused.line, **imported.model_dump(mode="json")},
        )
    log.info(
        "subscribers imported",
        imported=imported.imported,
        failed=imported.failed,
        format=content_type,
    )
    return respond(imported, status=200 if imported.failed == 0 else 207)


async def _save(conn: Any, row: ImportRow, erasure_key: bytes, token_name: str) -> None:
    # An address erased before stays off marketing, whatever the file says of consent
    # (storage/subscribers.py): an address new to the account is checked as it is saved.
    await subscriber_store.upsert(
        conn,
        Subscriber(
            account_id=row.account_id,
            email=row.email,
            username=row.username,
            name=row.name,
            language=row.language,
            timezone=row.timezone,
        ),
        before=await subscriber_store.get(conn, row.account_id, lock=True),
        erasure_key=erasure_key,
    )
    if row.marketing is not None:
        # Recorded only when it changes what is on file, so a re-import adds no history.
        if await consent_store.has_consent(conn, row.account_id) != row.marketing:
            await consent_store.record(
                conn,
                row.account_id,
                granted=row.marketing,
                source="import",
                wording_version=row.wording_version or "import",
                recorded_by=token_name,
            )
        if not row.marketing:
            # The account's offers first, cancelled as its withdrawal; then the address's
            # suppression cancels other accounts' offers to it.
            await consent.cancel_offers(conn, row.account_id, "import")
            await consent_store.suppress(conn, row.email, "withdrawn in an import")
