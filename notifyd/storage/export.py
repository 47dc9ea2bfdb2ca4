"""The export of everything held about one account (SPEC §2, the right of access and to
portability): one JSON document, streamed.

Each section is read with a cursor inside one read-only REPEATABLE READ transaction (one
consistent picture, never the whole account in memory) and written as it comes, in chunks
of about `CHUNK_CHARS`. PostgreSQL writes every row as JSON (`to_jsonb`, sql/export.sql),
so a row is the table's own columns. `ExportDocument` describes the document: the admin
API publishes its JSON Schema (http/admin/privacy.py) and `notifyd privacy export` writes
the same document (cli.py). `TABLES` says where each table holding account data goes;
tests/integration/test_privacy_export.py fails when a table is added without a place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("export")
FORMAT = "notifyd-export/1"
ATTACHMENT_BYTES = (
    "Not included: the attachments section lists each voicemail recording and fax document "
    "with its name, type and size; content_held says whether its bytes are still stored."
)
CHUNK_CHARS = 64 * 1024
CURSOR_ROWS = 500

# (key in the document, query, one row or a list)
SECTIONS: tuple[tuple[str, str, bool], ...] = (
    ("subscriber", "export_subscriber", False),
    ("erasure", "export_erasure", False),
    ("addresses", "export_addresses", True),
    ("consent_history", "export_consent", True),
    ("credit_states", "export_credit_states", True),
    ("balance_history", "export_balance_history", True),
    ("credit_statements", "export_credit_statements", True),
    ("events", "export_events", True),
    ("attachments", "export_attachments", True),
    ("notices", "export_notices", True),
    ("callbacks", "export_callbacks", True),
    ("soft_bounce_reports", "export_soft_bounce_reports", True),
    ("audit", "export_audit", True),
)

# Every table that holds something of an account, and the section it is exported in.
TABLES: Mapping[str, str] = {
    "subscribers": "subscriber",
    "erasures": "erasure",
    "suppressions": "addresses",
    "address_health": "addresses",
    "consent_events": "consent_history",
    "credit_states": "credit_states",
    "balance_history": "balance_history",
    "credit_statements": "credit_statements",
    "events": "events",
    "attachments": "attachments",
    "notices": "notices",
    "callbacks": "callbacks",
    "soft_bounce_reports": "soft_bounce_reports",
    "audit": "audit",
}
# Tables tied to accounts that the export leaves out, and why.
NOT_EXPORTED: Mapping[str, str] = {
    "webhook_receipts": "a webhook's source and id, which the event already carries",
    "broadcasts": "the admin's broadcasts, shared by every account; each notice is exported",
    "erased_addresses": "keyed hashes of erased addresses, which name no account",
}


# As PostgreSQL writes them, kept as text: the document is never parsed and written again.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
Uuid = Annotated[str, WithJsonSchema({"type": "string", "format": "uuid"})]


class _Row(BaseModel):
    # Every column is written (null for none); one the model does not know fails the tests.
    model_config = ConfigDict(extra="forbid")


class SubscriberRow(_Row):
    account_id: str
    email: str
    name: str | None
    username: str | None
    language: str | None
    timezone: str | None
    created_at: Timestamp
    updated_at: Timestamp
    closed_at: Timestamp | None
    voicemail_audio: bool
    low_credit_threshold: float | None
    preferences: dict[str, Any] = Field(description="Modes, quiet hours, addresses per category")
    restricted_at: Timestamp | None = Field(description="Since when processing is restricted")
    links_revoked_at: Timestamp | None = Field(
        description="Preference links issued before this no longer open"
    )


class ErasureRow(_Row):
    account_id: str
    requested_at: Timestamp
    finished_at: Timestamp | None
    requested_by: str | None
    kept_notices: int | None = Field(description="Billing notices kept, stripped, for accounting")


class SuppressionRow(_Row):
    address: str
    list: str
    reason: str
    at: Timestamp


class AddressHealthRow(_Row):
    address: str
    hard_bounces: int
    last_reply: str | None = Field(description="The relay's reply to the last hard bounce")
    last_bounce_at: Timestamp | None
    undeliverable_at: Timestamp | None
    soft_bounces: int = Field(description="Delays and 4.x.x failures the relay reported later")
    last_report_at: Timestamp | None = Field(
        description="When a relay's report (a bounce after it accepted the message) last counted"
    )


class Address(_Row):
    address: str
    suppressions: list[SuppressionRow] = Field(description="Lists the address is kept off")
    health: AddressHealthRow | None = Field(description="Bounces, when there were any")


class ConsentRow(_Row):
    id: int
    account_id: str
    purpose: str
    granted: bool
    source: str
    wording_version: str
    recorded_by: str | None
    at: Timestamp


class CreditStateRow(_Row):
    account_id: str
    currency: str
    level: str
    balance: float | None
    as_of: Timestamp | None


class BalanceRow(_Row):
    account_id: str
    currency: str
    balance: float
    at: Timestamp


class StatementRow(_Row):
    account_id: str
    period: str = Field(description="The first day of the subscriber's local month")
    currency: str
    opening: float | None
    closing: float | None
    closing_at: Timestamp | None
    top_ups: int
    top_up_sum: float
    payments: int
    payment_sum: float
    low_crossings: int
    critical_crossings: int
    limit_events: int
    queued_at: Timestamp | None = Field(description="When its statement was queued")


class EventRow(_Row):
    id: Uuid
    source: str
    webhook_id: str
    type: str
    account_id: str
    occurred_at: Timestamp
    received_at: Timestamp
    data: dict[str, Any] = Field(description="The event's validated fields")
    decision: dict[str, Any] | None = Field(description="Why it queued no notice")


class AttachmentRow(_Row):
    id: Uuid
    event_id: Uuid
    role: str
    filename: str
    declared_type: str
    content_type: str | None
    size_bytes: int | None
    source_url: str | None
    fetch_hosts: list[str]
    state: str
    fetch_attempts: int
    last_error: str | None
    created_at: Timestamp
    purge_after: Timestamp | None
    content_held: bool = Field(description="Whether the bytes are still stored (not exported)")


class NoticeRow(_Row):
    id: Uuid
    event_id: Uuid | None
    account_id: str
    kind: str
    category: str
    recipient: str
    language: str
    timezone: str
    reasons: list[Any] = Field(description="Why it was queued, as routing decided")
    state: str
    due_at: Timestamp
    attempts: int
    claimed_by: str | None
    claim_token: Uuid | None
    message_id: str
    last_error: str | None
    smtp_reply: str | None = Field(description="The relay's reply to the last attempt")
    created_at: Timestamp
    sent_at: Timestamp | None
    context: dict[str, Any] = Field(description="What its email showed beyond the event")
    dedupe_key: str | None
    digest: str | None
    digest_id: Uuid | None
    failed_at: Timestamp | None
    retried_at: Timestamp | None
    claimed_due_at: Timestamp | None


class CallbackRow(_Row):
    id: Uuid = Field(description="Also the webhook-id it was posted with")
    notice_id: Uuid
    event_id: Uuid
    account_id: str
    source: str
    source_webhook_id: str
    event_type: str
    type: str = Field(description="notice.delivered, notice.failed or notice.dead_lettered")
    category: str
    notice_state: str
    smtp_code: int | None
    occurred_at: Timestamp
    state: str = Field(description="pending, sending, delivered or abandoned")
    due_at: Timestamp
    attempts: int
    claim_token: Uuid | None
    last_error: str | None
    done_at: Timestamp | None


class SoftBounceReportRow(_Row):
    notice_id: Uuid
    status: str = Field(description="RFC 3463 status of the report, e.g. 4.2.2")
    reported_at: Timestamp


class AuditRow(_Row):
    id: int
    at: Timestamp
    actor: str = Field(description="An admin token's name, 'subscriber link', 'config' or 'cli'")
    action: str
    account_id: str | None
    detail: dict[str, Any] = Field(description="Names of the fields changed, counts, ids")


class ExportDocument(_Row):
    """Everything notifyd holds about one account, as `notifyd privacy export` and
    GET /v1/admin/subscribers/{account_id}/export write it."""

    model_config = ConfigDict(title="notifyd account export")

    format: Literal["notifyd-export/1"]
    account_id: str
    exported_at: Timestamp
    attachment_bytes: str = Field(description="Why the attachments' bytes are not here")
    subscriber: SubscriberRow | None
    erasure: ErasureRow | None = Field(description="When its erasure was asked for and done")
    addresses: list[Address]
    consent_history: list[ConsentRow]
    credit_states: list[CreditStateRow]
    balance_history: list[BalanceRow]
    credit_statements: list[StatementRow] = Field(
        description="The monthly credit statements' running record"
    )
    events: list[EventRow]
    attachments: list[AttachmentRow]
    notices: list[NoticeRow]
    callbacks: list[CallbackRow] = Field(description="What its notices became, told to sources")
    soft_bounce_reports: list[SoftBounceReportRow] = Field(
        description="Reports that a notice was delayed (mailbox full, ...), each counted once"
    )
    audit: list[AuditRow] = Field(description="What was done to the account, by whom, when")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the document, as served beside the OpenAPI document."""
    schema = ExportDocument.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


async def account_known(conn: Conn, account_id: str) -> bool:
    """Whether anything is held about the account (or its erasure was asked for)."""
    known: bool = await conn.fetchval(SQL["account_known"], account_id)
    return known


async def document(conn: Conn, account_id: str, now: datetime) -> AsyncGenerator[str, None]:
    """The export, in chunks of text; `conn` is used for nothing else meanwhile."""
    head = json.dumps(
        {
            "format": FORMAT,
            "account_id": account_id,
            "exported_at": now.isoformat(),
            "attachment_bytes": ATTACHMENT_BYTES,
        },
        ensure_ascii=False,
    )
    pending = [head[:-1]]
    size = len(pending[0])
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for key, query, many in SECTIONS:
            if not many:
                row = await conn.fetchval(SQL[query], account_id)
                pending.append(f', "{key}": {row or "null"}')
                continue
            pending.append(f', "{key}": [')
            separator = ""
            async for record in conn.cursor(SQL[query], account_id, prefetch=CURSOR_ROWS):
                pending.append(separator + record[0])
                separator = ","
                size += len(record[0])
                if size >= CHUNK_CHARS:
                    yield "".join(pending)
                    pending, size = [], 0
            pending.append("]")
    pending.append("}\n")
    yield "".join(pending)
