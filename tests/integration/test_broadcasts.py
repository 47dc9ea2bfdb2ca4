"""Broadcasts: every open account gets one notice, fanned out in batches in the background,
resumed after a stop, cancellable, with progress through the admin API."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from notifyd.catalogue.samples import SAMPLE_BROADCASTS, sample_event
from tests.conftest import BILLING_SECRET, WAIT, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.queue_support import settled_notices


def broadcast(kind: str = "notice.service", **extra: Any) -> dict[str, Any]:
    return {"kind": kind, **SAMPLE_BROADCASTS[kind], **extra}


async def add_subscribers(db: asyncpg.Connection, count: int, closed: int = 0) -> None:
    await db.execute(
        """INSERT INTO subscribers (account_id, email, language)
           SELECT 'acc-' || lpad(g::text, 7, '0'), 'user' || g || '@client.example',
                  CASE WHEN g % 2 = 0 THEN 'en' ELSE 'ro' END
           FROM generate_series(1, $1) AS g""",
        count,
    )
    if closed:
        await db.execute(
            "UPDATE subscribers SET closed_at = now()"
            " WHERE account_id <= 'acc-' || lpad($1, 7, '0')",
            str(closed),
        )


async def test_a_broadcast_reaches_every_open_account_once_in_its_language(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    await add_subscribers(db, 30, closed=2)
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["broadcasts"] = {"batch_size": 7}
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        status, created = await call(daemon, "POST", "/v1/admin/broadcasts", json=broadcast())
        messages = await smtp_sink.wait_for(28)
        async with asyncio.timeout(WAIT):
            while (progress := await call(daemon, "GET", f"/v1/admin/broadcasts/{created['id']}"))[
                1
            ]["sent"] < 28:
                await asyncio.sleep(0.1)
        states = [row["state"] for row in await settled_notices(db)]
    assert status == 202
    assert progress[1]["state"] == "done"
    assert progress[1]["queued"] == 28
    assert states == ["sent"] * 28
    recipients = sorted(str(m["To"]) for m in smtp_sink.messages)
    assert len(recipients) == len(set(recipients)) == 28
    assert "user1@client.example" not in recipients  # closed
    subjects = {str(m["Subject"]) for m in messages}
    assert subjects == {
        SAMPLE_BROADCASTS["notice.service"]["subject"]["ro"],
        SAMPLE_BROADCASTS["notice.service"]["subject"]["en"],
    }


async def test_a_scheduled_broadcast_waits_and_can_be_cancelled(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    await add_subscribers(db, 5)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        _, created = await call(
            daemon, "POST", "/v1/admin/broadcasts", json=broadcast(starts_at=later)
        )
        # That it is not fanned out early is what this tests. Rather than a sleep for the
        # fan-out to have had its chance: a broadcast due now, posted after it, is fanned
        # out to the end, so the fan-out looked for work while the scheduled one waited.
        _, now = await call(daemon, "POST", "/v1/admin/broadcasts", json=broadcast())
        async with asyncio.timeout(WAIT):
            while (await call(daemon, "GET", f"/v1/admin/broadcasts/{now['id']}"))[1][
                "state"
            ] != "done":
                await asyncio.sleep(0.05)
        waiting = await call(daemon, "GET", f"/v1/admin/broadcasts/{created['id']}")
        cancelled = await call(daemon, "DELETE", f"/v1/admin/broadcasts/{created['id']}")
        again = await call(daemon, "DELETE", f"/v1/admin/broadcasts/{created['id']}")
        unknown = await call(
            daemon, "GET", "/v1/admin/broadcasts/11111111-1111-1111-1111-111111111111"
        )
    assert waiting[1]["state"] == "scheduled"
    assert waiting[1]["queued"] == 0
    assert cancelled[0] == 200
    assert cancelled[1]["state"] == "cancelled"
    assert again[0] == 409
    assert unknown[0] == 404
    queued = await db.fetch(
        "SELECT b.id, count(n.id) AS notices FROM broadcasts AS b"
        " LEFT JOIN notices AS n USING (event_id) GROUP BY b.id"
    )
    assert {str(row["id"]): row["notices"] for row in queued} == {created["id"]: 0, now["id"]: 5}


async def test_broadcast_fields_are_validated(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        invalid = await call(
            daemon,
            "POST",
            "/v1/admin/broadcasts",
            json={"kind": "marketing.spam", "subject": {"ro": "x"}, "body": {}},
        )
    assert invalid[0] == 422
    assert set(invalid[1]["fields"]) == {"kind", "subject", "body"}


async def test_100000_subscribers_fan_out_in_batches_resume_after_a_stop_and_get_one_each(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    total = 100_000
    await add_subscribers(db, total)
    # Delivery is kept slow on purpose: this test is about the fan-out, not SMTP.
    smtp_sink.data_delay = 5
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["broadcasts"] = {"batch_size": 2000}
    config["delivery"]["concurrency"] = 1
    config["daemon"]["shutdown_grace_seconds"] = 1
    settings = load_config(tmp_path, config)
    latencies: list[float] = []

    async def post_webhooks(daemon: Any, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            event = sample_event("account.created", f"hook-{n}", email=f"h{n}@client.example")
            started = time.perf_counter()
            status, _ = await daemon.post("billing", event, BILLING_SECRET)
            latencies.append(time.perf_counter() - started)
            assert status == 202

    started = time.perf_counter()
    async with running_daemon(settings) as daemon:
        stop = asyncio.Event()
        hooks = asyncio.create_task(post_webhooks(daemon, stop))
        _, created = await call(daemon, "POST", "/v1/admin/broadcasts", json=broadcast())
        path = f"/v1/admin/broadcasts/{created['id']}"
        async with asyncio.timeout(60):
            while (progress := await call(daemon, "GET", path))[1]["queued"] < total // 5:
                await asyncio.sleep(0.02)
        stop.set()
        await hooks
    stopped_at = progress[1]
    assert stopped_at["state"] == "running"  # stopped mid-way
    assert total // 5 <= stopped_at["queued"] < total

    async with running_daemon(settings) as daemon:
        async with asyncio.timeout(120):
            while (progress := await call(daemon, "GET", path))[1]["state"] != "done":
                await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    counts = await db.fetchrow(
        "SELECT count(*) AS notices, count(DISTINCT account_id) AS accounts,"
        " count(*) FILTER (WHERE account_id LIKE 'acc-%') AS first"
        " FROM notices WHERE dedupe_key = 'broadcast:' || $1",
        created["id"],
    )
    assert counts is not None
    # Accounts created by the webhooks meanwhile are open accounts too: they get it as well.
    assert counts["first"] == total
    assert counts["notices"] == counts["accounts"] == progress[1]["queued"]
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 100 else None
    print(
        f"\nfan-out: {total} subscribers in {elapsed:.1f} s with a stop and restart "
        f"({total / elapsed:,.0f}/s overall); webhooks meanwhile: {len(latencies)}, "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 and f'{p99:.1f}'} ms"
    )


async def test_a_broadcast_waits_for_each_subscribers_quiet_hours_and_reaches_every_address(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    zone = "America/New_York"
    local = datetime.now(UTC).astimezone(ZoneInfo(zone))
    # Quiet hours around the subscriber's "now", ending two hours from now local time.
    start = (local - timedelta(hours=1)).strftime("%H:00")
    end = (local + timedelta(hours=2)).strftime("%H:00")
    await db.execute(
        """INSERT INTO subscribers (account_id, email, timezone, preferences) VALUES
           ('acc-night', 'night@client.example', $1, $2),
           ('acc-two', 'two@client.example', NULL, $3),
           ('acc-off', 'off@client.example', NULL, '{"modes": {"marketing": "off"}}')""",
        zone,
        {"quiet_hours": f"{start}-{end}"},
        {"extra_emails": ["office@client.example"]},
    )
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        status, _ = await call(daemon, "POST", "/v1/admin/broadcasts", json=broadcast())
        await smtp_sink.wait_for(3)
        # The fan-out is one batch; nothing left to send now but the notice that waits.
        await settled_notices(db, later=timedelta(minutes=30))
        rows = await db.fetch(
            "SELECT account_id, recipient, state, due_at, reasons FROM notices"
            " WHERE kind = 'notice.service' ORDER BY account_id, recipient"
        )
    assert status == 202
    assert sorted(str(m["To"]) for m in smtp_sink.messages) == [
        "off@client.example",  # service notices are mandatory: "off" is for marketing only
        "office@client.example",
        "two@client.example",
    ]
    night = rows[0]
    assert night["account_id"] == "acc-night"
    assert night["state"] == "queued"
    assert night["due_at"].astimezone(ZoneInfo(zone)).strftime("%H:%M") == end
    assert any("quiet hours" in reason for reason in night["reasons"])


async def test_a_broadcast_avoids_undeliverable_addresses_but_never_drops_a_mandatory_one(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    await db.execute(
        """INSERT INTO subscribers (account_id, email, preferences) VALUES
           ('acc-a', 'gone@client.example', $1),
           ('acc-b', 'bounced@client.example', '{}'),
           ('acc-c', 'fine@client.example', '{}')""",
        {"extra_emails": ["office@client.example"]},
    )
    await db.execute(
        """INSERT INTO address_health (address, hard_bounces, undeliverable_at)
           VALUES ('gone@client.example', 3, now()), ('bounced@client.example', 3, now())"""
    )
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        status, _ = await call(daemon, "POST", "/v1/admin/broadcasts", json=broadcast())
        async with asyncio.timeout(WAIT):
            while await db.fetchval(
                "SELECT count(*) FROM notices WHERE state IN ('queued', 'sending')"
            ) or not await db.fetchval("SELECT count(*) FROM notices"):
                await asyncio.sleep(0.1)
        rows = await db.fetch("SELECT account_id, recipient FROM notices ORDER BY account_id")
    assert status == 202
    assert [(r["account_id"], r["recipient"]) for r in rows] == [
        # Its other address instead of the one that bounced.
        ("acc-a", "office@client.example"),
        # No other address: still queued to it, so a failure shows in the dead letters.
        ("acc-b", "bounced@client.example"),
        ("acc-c", "fine@client.example"),
    ]
