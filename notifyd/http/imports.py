"""POST /v1/admin/subscribers/import: CSV or JSON lines, streamed.

Rows are read as they arrive and written in batches of `BATCH` rows, each batch in its own
transaction, so a million-row file neither sits in memory nor holds one huge transaction.
Importing the same file twice gives the same result. Each invalid row is reported with its
line number and fields; the valid rows are kept. A file that cannot be read on (not UTF-8, a
line over the limit, a quote never closed: `notifyd.intake.subscriber_files`) is answered 400 naming
the line, its rows before that line kept; a header that does not name the columns is a 422.
Consent given in a file is recorded with source "import", which never takes an address off
the suppression list.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pydantic
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, StrictBool

from notifyd import unstorable
from notifyd.catalogue.fields import (
    DisplayText,
    EmailAddress,
    Identifier,
    Language,
    Text,
    TimeZoneName,
)
from notifyd.http.errors import error_response
from notifyd.http.runtime import RUNTIME
from notifyd.intake.subscriber_files import BadFile, Record, csv_records, json_lines_records
from notifyd.model import Subscriber
from notifyd.storage import consent as consent_store
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)

BATCH = 500
MAX_REPORTED_ERRORS = 1000
CSV_TYPES = ("text/csv", "application/csv")
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")


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


@dataclass
class _Outcome:
    imported: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Records whose quoted field spans lines: imported, and named so that rows a stray
    # quote joined to them are not lost in silence.
    multi_line_rows: list[dict[str, Any]] = field(default_factory=list)
    refused: BadFile | None = None

    def body(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "failed": self.failed,
            "errors": self.errors,
            "multi_line_rows": self.multi_line_rows,
        }


class _Importer:
    """One import, run in a worker thread: reading, parsing and validating are CPU work that
    would stall the event loop (a million rows, or a quote never closed). The thread asks the
    loop for each chunk of the body and hands it each batch to write, so the body is still
    streamed and batches are still written as they fill."""

    def __init__(self, request: web.Request, pool: asyncpg.Pool, content_type: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._content = request.content
        self._pool = pool
        self._content_type = content_type
        # Set when the request is abandoned (client gone, shutdown): the thread stops at its
        # next chunk or batch instead of importing for nobody.
        self.abandoned = threading.Event()
        self.outcome = _Outcome()

    def run(self) -> _Outcome:
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
            self.outcome.refused = error
        # Rows before a line that cannot be read are kept, as the answer says.
        if batch:
            self._write(batch)
        return self.outcome

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
                        and len(self.outcome.multi_line_rows) < MAX_REPORTED_ERRORS
                    ):
                        self.outcome.multi_line_rows.append(
                            {"line": record.line, "last_line": record.last_line}
                        )
                    return row
        self.outcome.failed += 1
        if len(self.outcome.errors) < MAX_REPORTED_ERRORS:
            error_entry: dict[str, Any] = {"line": record.line, "fields": problem}
            if record.last_line > record.line:
                error_entry["last_line"] = record.last_line
            self.outcome.errors.append(error_entry)
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
        self.outcome.imported += len(rows)

    async def _save_batch(self, rows: list[ImportRow]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            for row in rows:
                await _save(conn, row)


class _Abandoned(Exception):
    """The request went away: the import thread stops."""


async def import_subscribers(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    content_type = request.content_type
    if content_type not in CSV_TYPES + JSONL_TYPES:
        return error_response(
            415, "unsupported_media_type", "send text/csv or application/x-ndjson (JSON lines)"
        )
    importer = _Importer(request, runtime.pool, content_type)
    try:
        outcome = await asyncio.to_thread(importer.run)
    finally:
        importer.abandoned.set()
    refused = outcome.refused
    if refused is not None:
        log.warning(
            "subscriber import refused",
            line=refused.line,
            header=refused.header,
            imported=outcome.imported,
            failed=outcome.failed,
            format=content_type,
        )
        return error_response(
            422 if refused.header else 400,
            "invalid_header" if refused.header else "unreadable_file",
            str(refused),
            extra={"line": refused.line, **outcome.body()},
        )
    log.info(
        "subscribers imported",
        imported=outcome.imported,
        failed=outcome.failed,
        format=content_type,
    )
    return web.json_response(outcome.body(), status=200 if outcome.failed == 0 else 207)


async def _save(conn: Any, row: ImportRow) -> None:
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
                recorded_by=None,
            )
        if not row.marketing:
            await consent_store.suppress(conn, row.email, "withdrawn in an import")
