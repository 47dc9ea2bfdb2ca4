"""Rows of every data class written straight into the database at chosen ages, for the
retention tests: a fake clock (`NOW`) runs the purge, so the rows are dated before it
instead of waiting years. Bulk rows come from generate_series, tens of thousands a second.

Neighbours: test_retention.py (every class, batches, hosts, schedule); conftest.py's
`db` and `daemon_pool`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

# The fake clock: far from the real one, so nothing here depends on the database's now().
NOW = datetime(2031, 6, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def ago(days: float) -> datetime:
    return NOW - days * DAY


async def subscriber(
    db: asyncpg.Connection, account: str, *, closed_days_ago: float | None = None
) -> None:
    """A subscriber with consent history, credit state and balances; closed that long ago."""
    closed = None if closed_days_ago is None else ago(closed_days_ago)
    await db.execute(
        "INSERT INTO subscribers (account_id, email, name, closed_at) VALUES ($1, $2, $3, $4)",
        account,
        f"{account}@example.test",
        f"Name of {account}",
        closed,
    )
    await db.execute(
        "INSERT INTO consent_events (account_id, purpose, granted, source, wording_version)"
        " VALUES ($1, 'marketing', true, 'subscriber', 'v1')",
        account,
    )
    await db.execute(
        "INSERT INTO credit_states (account_id, currency, level) VALUES ($1, 'EUR', 'ok')",
        account,
    )
    await db.execute(
        "INSERT INTO balance_history (account_id, currency, balance, at)"
        " VALUES ($1, 'EUR', 10, $2)",
        account,
        NOW,
    )


async def event(
    db: asyncpg.Connection,
    account: str,
    event_type: str,
    days_ago: float,
    *,
    data: dict[str, Any] | None = None,
    category: str | None = None,
    state: str = "sent",
) -> uuid.UUID:
    """An event received `days_ago`, with one notice of `category` in `state` made then
    (and sent or failed then, when it is): none when `category` is None."""
    event_id = uuid.uuid4()
    at = ago(days_ago)
    await db.execute(
        "INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at,"
        " received_at, data) VALUES ($1, 'pbx', $2, $3, $4, $5, $5, $6)",
        event_id,
        f"msg_{event_id.hex}",
        event_type,
        account,
        at,
        {"account_id": account, **(data or {})},  # the `db` fixture encodes JSON
    )
    if category is not None:
        await db.execute(
            "INSERT INTO notices (id, event_id, account_id, kind, category, recipient,"
            " language, timezone, message_id, state, created_at, due_at, sent_at, failed_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'ro', 'UTC', $7, $8::text, $9::timestamptz, $9,"
            " CASE WHEN $8 = 'sent' THEN $9 END, CASE WHEN $8 = 'failed' THEN $9 END)",
            uuid.uuid4(),
            event_id,
            account,
            event_type,
            category,
            f"{account}@example.test",
            f"<{event_id.hex}@voip.example>",
            state,
            at,
        )
    return event_id


async def kept(db: asyncpg.Connection, events: list[uuid.UUID]) -> list[bool]:
    """Whether each event is still there."""
    present = {row["id"] for row in await db.fetch("SELECT id FROM events")}
    return [event_id in present for event_id in events]


async def years_of_calls(db: asyncpg.Connection, hours: int, accounts: int = 200) -> None:
    """A missed call an hour, `hours` back from NOW, each with its sent notice, spread over
    `accounts` open accounts: several years of a small platform, in two statements."""
    await db.execute(
        "INSERT INTO subscribers (account_id, email)"
        " SELECT 'bulk-' || a, 'bulk-' || a || '@example.test'"
        " FROM generate_series(0, $1 - 1) AS a",
        accounts,
    )
    await db.execute(
        """
        WITH e AS (
            INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at,
                                received_at, data)
            SELECT gen_random_uuid(), 'pbx', 'bulk-' || g, 'call.missed',
                   'bulk-' || (g % $2), at, at, '{}'::jsonb
            FROM generate_series(1, $1) AS g,
                 LATERAL (SELECT $3::timestamptz - g * interval '1 hour' AS at) AS t
            RETURNING id, account_id, received_at
        )
        INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language,
                             timezone, message_id, state, created_at, due_at, sent_at)
        SELECT gen_random_uuid(), id, account_id, 'call.missed', 'calls',
               account_id || '@example.test', 'ro', 'UTC', '<' || id || '@voip.example>',
               'sent', received_at, received_at, received_at
        FROM e
        """,
        hours,
        accounts,
        NOW,
    )


async def digest(db: asyncpg.Connection, account: str, category: str, days_ago: float) -> uuid.UUID:
    """A digest notice sent `days_ago`, telling nothing yet (`tell`): its id."""
    digest_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO notices (id, account_id, kind, category, recipient, language, timezone,"
        " message_id, state, created_at, due_at, sent_at)"
        " VALUES ($1, $2, 'digest', $3, $4, 'ro', 'UTC', $5, 'sent', $6, $6, $6)",
        digest_id,
        account,
        category,
        f"{account}@example.test",
        f"<{digest_id.hex}@voip.example>",
        ago(days_ago),
    )
    return digest_id


async def tell(db: asyncpg.Connection, digest_id: uuid.UUID, events: list[uuid.UUID]) -> None:
    """The notices of `events` told in the digest: `digested`, their digest_id pointing to it."""
    await db.execute(
        "UPDATE notices SET state = 'digested', digest_id = $1 WHERE event_id = ANY($2::uuid[])",
        digest_id,
        events,
    )
