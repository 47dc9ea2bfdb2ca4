"""POST /v1/admin/subscribers/import: CSV or JSON lines, streamed.

Rows are read as they arrive and written in batches of `BATCH` rows, each batch in its own
transaction, so a million-row file neither sits in memory nor holds one huge transaction.
Importing the same file twice gives the same result. Each invalid row is reported with its
line number and fields; the valid rows are kept. Consent given in a file is recorded with
source "import", which never takes an address off the suppression list.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import Any

import pydantic
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, StrictBool

from notifyd.events import DisplayText, EmailAddress, Identifier, Language, Text, TimeZoneName
from notifyd.http.errors import error_response
from notifyd.http.runtime import RUNTIME
from notifyd.routing import Subscriber
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


async def _lines(request: web.Request) -> AsyncIterator[tuple[int, str]]:
    number = 0
    async for raw in request.content:
        number += 1
        yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")


async def _csv_rows(request: web.Request) -> AsyncIterator[tuple[int, dict[str, Any] | str]]:
    header: list[str] | None = None
    pending: list[str] = []
    first_line = 0
    async for number, line in _lines(request):
        if not pending:
            first_line = number
        pending.append(line)
        # A quoted field may span lines: wait until the quotes balance.
        if sum(part.count('"') for part in pending) % 2:
            continue
        record = next(csv.reader(["\n".join(pending)]), [])
        pending = []
        if not record or not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in record]
            continue
        if len(record) != len(header):
            yield first_line, f"has {len(record)} columns, the header has {len(header)}"
            continue
        row: dict[str, Any] = {k: v for k, v in zip(header, record, strict=True) if v != ""}
        if "marketing" in row:
            row["marketing"] = {"true": True, "false": False, "1": True, "0": False}.get(
                row["marketing"].strip().lower(), row["marketing"]
            )
        yield first_line, row
    if pending:
        yield first_line, "has an unterminated quoted field"


async def _jsonl_rows(request: web.Request) -> AsyncIterator[tuple[int, dict[str, Any] | str]]:
    async for number, line in _lines(request):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            yield number, "is not valid JSON"
            continue
        yield number, value if isinstance(value, dict) else "must be a JSON object"


async def import_subscribers(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    content_type = request.content_type
    if content_type in CSV_TYPES:
        rows = _csv_rows(request)
    elif content_type in JSONL_TYPES:
        rows = _jsonl_rows(request)
    else:
        return error_response(
            415, "unsupported_media_type", "send text/csv or application/x-ndjson (JSON lines)"
        )
    imported = 0
    errors: list[dict[str, Any]] = []
    failed = 0
    batch: list[ImportRow] = []

    async def flush() -> None:
        nonlocal imported
        async with runtime.pool.acquire() as conn, conn.transaction():
            for row in batch:
                await _save(conn, row)
        imported += len(batch)
        batch.clear()

    async for line, row in rows:
        problem: dict[str, str] | None = None
        if isinstance(row, str):
            problem = {"line": row}
        else:
            try:
                batch.append(ImportRow.model_validate(row))
            except pydantic.ValidationError as error:
                problem = {
                    ".".join(str(p) for p in item["loc"]) or "row": item["msg"].removeprefix(
                        "Value error, "
                    )
                    for item in error.errors(include_url=False)
                }
        if problem is not None:
            failed += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append({"line": line, "fields": problem})
        if len(batch) >= BATCH:
            await flush()
    if batch:
        await flush()
    log.info("subscribers imported", imported=imported, failed=failed, format=content_type)
    return web.json_response(
        {"imported": imported, "failed": failed, "errors": errors},
        status=200 if failed == 0 else 207,
    )


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
