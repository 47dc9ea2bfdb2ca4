"""Why did (nothing) happen: every reason sentence notifyd can store, each driven through the
real intake (`intake.ingest` on a real PostgreSQL) and read back as the admin API reads it,
word for word. A sentence that no longer matches what happened fails here.

Reasons exist in English only (the admin's language); there is no other wording to test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg

from notifyd.events import parse_event
from notifyd.intake import IntakeRules, Receipt, ingest
from notifyd.samples import sample_event
from notifyd.settings import CallSettings, DefaultsSettings, QuietHours, Thresholds
from notifyd.storage import events as event_store
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    SmtpSink,
    eventually,
    load_config,
    running_daemon,
)
from tests.integration.test_admin import admin_config, call

ACCOUNT = "acc-why"
ZONE = "Europe/Bucharest"
NOON = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # 12:00 in Bucharest
NIGHT = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 01:00 in Bucharest
QUIET = QuietHours(time(22, 0), time(8, 0))
RULES = IntakeRules(
    DefaultsSettings(language="ro", timezone=ZONE, quiet_hours=QUIET),
    CallSettings(voicemail_wait_seconds=120, burst_window_seconds=0),
    {"EUR": Thresholds(low=Decimal("10"), critical=Decimal("2"), hysteresis=Decimal("1"))},
    "voip.example",
)
_ids = iter(range(1_000_000))


async def post(
    pool: asyncpg.Pool,
    kind: str,
    *,
    now: datetime = NOON,
    rules: IntakeRules = RULES,
    account: str = ACCOUNT,
    **fields: Any,
) -> Receipt:
    raw = sample_event(kind, account, now=now, **fields)
    return await ingest(
        pool,
        source="pbx",
        webhook_id=f"msg_{next(_ids)}",
        event=parse_event(json.dumps(raw).encode()),
        rules=rules,
        now=now,
    )


async def reasons(db: asyncpg.Connection, receipt: Receipt) -> list[list[str]]:
    rows = await db.fetch(
        "SELECT reasons FROM notices WHERE event_id = $1 ORDER BY recipient", receipt.event_id
    )
    return [row["reasons"] for row in rows]


async def subscriber(pool: asyncpg.Pool, db: asyncpg.Connection, **preferences: Any) -> None:
    await post(pool, "account.created", email="ana@client.example")
    if preferences:
        await db.execute(
            "UPDATE subscribers SET preferences = $1 WHERE account_id = $2",
            preferences,
            ACCOUNT,
        )


def quiet(start: int, end: int, **changes: Any) -> IntakeRules:
    defaults = replace(RULES.defaults, quiet_hours=QuietHours(time(start), time(end)), **changes)
    return replace(RULES, defaults=defaults)


# -- found by trying it -----------------------------------------------------------------------


async def test_a_daily_digest_outside_quiet_hours_does_not_claim_to_follow_them(
    daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    rules = quiet(23, 7, digest_time=time(21, 0))
    await subscriber(daemon_pool, db, modes={"fax": "daily"})
    fax = await post(daemon_pool, "fax.sent", rules=rules)
    assert await reasons(db, fax) == [
        [
            "category fax",
            "fax notices go in the daily digest: held for the one sent at"
            " 2026-11-22 21:00 Europe/Bucharest",
        ]
    ]


async def test_a_missed_call_alone_does_not_speak_of_other_legs(
    daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await subscriber(daemon_pool, db)
    call = await post(daemon_pool, "call.missed", call_id="1763800000.1", to_voicemail=False)
    assert await reasons(db, call) == [["category calls", "outside quiet hours: sent at once"]]


async def test_a_sent_notice_was_due_before_it_was_sent(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    # One notice claimed as it is queued (the welcome, due now), one claimed by a worker
    # when its wait for a voicemail ends: each claim used to write its lease into due_at.
    settings = load_config(
        tmp_path,
        admin_config(tmp_path, database_url, smtp_sink.port)
        | {"calls": {"voicemail_wait_seconds": 0.3, "burst_window_seconds": 0}},
    )
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", ACCOUNT), BILLING_SECRET)
        await daemon.post(
            "pbx", sample_event("call.missed", ACCOUNT, to_voicemail=True), PBX_SECRET
        )
        await smtp_sink.wait_for(2)

        async def both_recorded() -> list[dict[str, Any]] | None:
            listed = await call(daemon, "GET", f"/v1/admin/subscribers/{ACCOUNT}/notices")
            notices: list[dict[str, Any]] = listed[1]["notices"]
            return notices if all(n["sent_at"] for n in notices) else None

        notices = await eventually(both_recorded, "both notices recorded as sent")
    assert sorted(n["kind"] for n in notices) == ["account.created", "call.missed"]
    for notice in notices:
        due, sent = (datetime.fromisoformat(notice[key]) for key in ("due_at", "sent_at"))
        assert due <= sent, notice


# -- the admin API: events, their decisions and their notices --------------------------------


async def test_the_admin_sees_why_an_unknown_accounts_event_queued_nothing(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        posted = await daemon.post("pbx", sample_event("call.missed", "acc-nobody"), PBX_SECRET)
        event_id = posted[1]["event_id"]
        listed = await call(daemon, "GET", "/v1/admin/subscribers/acc-nobody/events")
        looked_up = await call(daemon, "GET", f"/v1/admin/events/{event_id}")
        notices_view = await call(daemon, "GET", "/v1/admin/subscribers/acc-nobody/notices")
        nobody = await call(daemon, "GET", "/v1/admin/subscribers/acc-never/events")
    unknown = {
        "outcome": "nothing_queued",
        "code": "unknown_account",
        "reason": "unknown account: no account.created received for it",
    }
    assert listed[0] == 200
    assert listed[1]["subscriber"] is False
    [event] = listed[1]["events"]
    assert (event["event_id"], event["type"], event["notices"]) == (event_id, "call.missed", 0)
    assert event["decision"] == unknown
    assert looked_up[0] == 200
    assert looked_up[1]["decision"] == unknown
    assert looked_up[1]["notices"] == []
    assert notices_view[0] == 200
    assert notices_view[1]["notices"] == []
    assert [e["decision"] for e in notices_view[1]["events_without_notices"]] == [unknown]
    assert nobody[0] == 404


async def test_an_event_looked_up_shows_its_notices_and_their_reasons(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    config["defaults"] = {"quiet_hours": ""}
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", ACCOUNT), BILLING_SECRET)
        posted = await daemon.post(
            "pbx", sample_event("fax.sent", ACCOUNT, remote_number="+40215550109"), PBX_SECRET
        )
        looked_up = await call(daemon, "GET", f"/v1/admin/events/{posted[1]['event_id']}")
        missing = await call(daemon, "GET", f"/v1/admin/events/{uuid4()}")
        malformed = await call(daemon, "GET", "/v1/admin/events/not-a-uuid")
        listed = await call(daemon, "GET", f"/v1/admin/subscribers/{ACCOUNT}/events?limit=1")
        bad = await call(daemon, "GET", f"/v1/admin/subscribers/{ACCOUNT}/events?before=soon")
    assert looked_up[0] == 200
    assert looked_up[1]["decision"] == {"outcome": "queued", "code": "queued", "reason": None}
    [notice] = looked_up[1]["notices"]
    assert notice["kind"] == "fax.sent"
    assert notice["reasons"] == ["category fax", "no quiet hours: sent at once"]
    assert (missing[0], malformed[0]) == (404, 404)
    assert [e["type"] for e in listed[1]["events"]] == ["fax.sent"]
    assert listed[1]["subscriber"] is True
    assert bad[0] == 422
    assert set(bad[1]["fields"]) == {"before"}


async def test_an_event_routed_before_decisions_were_stored_says_so(
    daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    # An older host stores the event and routes it without a decision (during an upgrade).
    receipt = await post(daemon_pool, "call.missed", account="acc-old")
    await db.execute("UPDATE events SET decision = NULL WHERE id = $1", receipt.event_id)
    async with daemon_pool.acquire() as conn:
        found = await event_store.decision(conn, receipt.event_id)
    assert found is not None
    assert found["decision"] == {
        "outcome": "not_recorded",
        "code": "not_recorded",
        "reason": "no decision recorded: routed before decisions were stored (0009)",
    }
