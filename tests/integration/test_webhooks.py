"""POST /v1/webhooks/{source} against a real daemon, PostgreSQL and SMTP server (SPEC §3)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    OTHER_SECRET,
    PBX_SECRET,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
    signed_request,
)
from tests.integration.queue_support import settled_notices


async def test_account_created_then_call_missed_reach_the_smtp_server(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        created = sample_event(
            "account.created",
            "acc-42",
            email="maria@client.example",
            name="Maria Ionescu",
            username="maria.ionescu",
        )
        status, body = await daemon.post("billing", created, BILLING_SECRET)
        assert status == 202
        assert body["duplicate"] is False
        welcome = (await smtp_sink.wait_for(1))[0]

        missed = sample_event(
            "call.missed",
            "acc-42",
            caller_number="+40721555123",
            caller_name="Ion Popescu",
            called_number="+40215550100",
            started_at="2026-11-20T08:15:00+00:00",
        )
        status, body = await daemon.post("pbx", missed, PBX_SECRET)
        assert status == 202
        call = (await smtp_sink.wait_for(2))[1]

    assert welcome["To"] == "maria@client.example"
    assert smtp_sink.envelopes[0] == ("notificari@voip.example", ["maria@client.example"])
    assert welcome["Auto-Submitted"] == "auto-generated"
    welcome_text = welcome.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "maria.ionescu" in welcome_text
    assert "parol" in welcome_text.lower()  # says passwords are never sent...
    assert "Maria Ionescu" in welcome_text
    assert welcome.get_body(("html",)) is not None

    assert call["To"] == "maria@client.example"
    assert "+40 21 555 0100" in call["Subject"]
    call_text = call.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "+40 721 555 123" in call_text
    assert "Ion Popescu" in call_text
    assert "+40 21 555 0100" in call_text
    # 08:15 UTC is 10:15 in Bucharest (EET, UTC+2, in November).
    assert "10:15" in call_text
    assert call["Message-ID"] != welcome["Message-ID"]

    rows = await db.fetch("SELECT state, smtp_reply, message_id FROM notices ORDER BY created_at")
    assert [row["state"] for row in rows] == ["sent", "sent"]
    assert rows[1]["message_id"] == call["Message-ID"]
    assert rows[1]["smtp_reply"].startswith("2.0.0") or "queued" in rows[1]["smtp_reply"]


async def test_replayed_webhook_id_answers_duplicate_and_sends_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-7", email="dup@client.example")
        first = await daemon.post("billing", event, BILLING_SECRET, webhook_id="msg_replay_1")
        await smtp_sink.wait_for(1)
        again = await daemon.post("billing", event, BILLING_SECRET, webhook_id="msg_replay_1")
        # The same id from another source is another event.
        other = await daemon.post("pbx", event, PBX_SECRET, webhook_id="msg_replay_1")
        await smtp_sink.wait_for(2)
        # A wrongly queued duplicate would be a third notice, sent before this returns.
        notices = await settled_notices(db)
    assert [row["state"] for row in notices] == ["sent", "sent"]
    assert first[0] == 202
    assert again[0] in (200, 202)
    assert again[1] == {"event_id": first[1]["event_id"], "duplicate": True}
    assert other[0] == 202
    assert other[1]["event_id"] != first[1]["event_id"]
    assert len(smtp_sink.messages) == 2
    assert await db.fetchval("SELECT count(*) FROM events") == 2


@pytest.fixture
async def daemon_env(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> tuple[Path, str, SmtpSink]:
    return tmp_path, database_url, smtp_sink


@pytest.mark.parametrize("fault", ["tampered body", "stale timestamp", "other secret", "future"])
async def test_bad_signature_is_refused_401(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection, fault: str
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    event = sample_event("account.created", "acc-1")
    secret = OTHER_SECRET if fault == "other secret" else BILLING_SECRET
    moment = datetime.now(UTC)
    if fault == "stale timestamp":
        moment -= timedelta(minutes=6)
    if fault == "future":
        moment += timedelta(minutes=6)
    body, headers = signed_request(event, secret, timestamp=moment)
    if fault == "tampered body":
        body = body.replace(b"acc-1", b"acc-2")
    async with (
        running_daemon(settings) as daemon,
        daemon.session.post(
            f"{daemon.base_url}/v1/webhooks/billing", data=body, headers=headers
        ) as response,
    ):
        status, answer = response.status, await response.json()
    assert status == 401
    assert answer["error"] == "bad_signature"
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_missing_signature_headers_are_named(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with (
        running_daemon(settings) as daemon,
        daemon.session.post(
            f"{daemon.base_url}/v1/webhooks/pbx",
            data=b"{}",
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 401
        assert "webhook-signature" in (await response.json())["detail"]


async def test_any_of_several_secrets_is_accepted_during_rotation(
    tmp_path: Path, database_url: str
) -> None:
    config = base_config(
        tmp_path, database_url, None, sources__billing={"secrets": [OTHER_SECRET, BILLING_SECRET]}
    )
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        old = await daemon.post("billing", sample_event("account.created", "a1"), BILLING_SECRET)
        new = await daemon.post("billing", sample_event("account.created", "a2"), OTHER_SECRET)
        wrong = await daemon.post("billing", sample_event("account.created", "a3"), PBX_SECRET)
    assert (old[0], new[0], wrong[0]) == (202, 202, 401)


async def test_unknown_source_is_404(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        status, body = await daemon.post("crm", sample_event("account.created", "a"), PBX_SECRET)
    assert status == 404
    assert body["error"] == "unknown_source"


async def test_malformed_json_is_400(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        status, body = await daemon.post("pbx", b'{"type": "call.missed", "data": {', PBX_SECRET)
    assert status == 400
    assert body["error"] == "malformed_json"
    assert await db.fetchval("SELECT count(*) FROM webhook_receipts") == 0


async def test_non_json_content_type_is_415(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        status, body = await daemon.post(
            "pbx",
            b"type=call.missed",
            PBX_SECRET,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert status == 415
    assert body["error"] == "unsupported_media_type"


async def test_unknown_type_is_422_naming_the_type(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    event = {"type": "call.teleported", "timestamp": datetime.now(UTC).isoformat(), "data": {}}
    async with running_daemon(settings) as daemon:
        status, body = await daemon.post("pbx", event, PBX_SECRET)
    assert status == 422
    assert body["error"] == "unknown_type"
    assert "type" in body["fields"]


async def test_missing_field_is_422_naming_each_field(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    event = sample_event("call.missed", "acc-1")
    del event["data"]["caller_number"]
    event["data"]["started_at"] = "yesterday"
    async with running_daemon(settings) as daemon:
        status, body = await daemon.post("pbx", event, PBX_SECRET)
    assert status == 422
    assert body["error"] == "invalid_event"
    assert set(body["fields"]) == {"data.caller_number", "data.started_at"}
    assert await db.fetchval("SELECT count(*) FROM events") == 0


async def test_sender_outside_allow_from_is_403(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    config = base_config(
        tmp_path,
        database_url,
        None,
        sources__pbx={"allow_from": ["192.0.2.0/24", "2001:db8::/32"]},
        sources__billing={"allow_from": ["127.0.0.0/8"]},
    )
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        refused = await daemon.post("pbx", sample_event("call.missed", "a"), PBX_SECRET)
        allowed = await daemon.post("billing", sample_event("account.created", "a"), BILLING_SECRET)
    assert refused[0] == 403
    assert refused[1]["error"] == "forbidden"
    assert allowed[0] == 202
    assert await db.fetchval("SELECT count(*) FROM events") == 1


async def test_oversized_body_is_413(tmp_path: Path, database_url: str) -> None:
    config = base_config(tmp_path, database_url, None, webhooks={"max_body_bytes": 4096})
    settings = load_config(tmp_path, config)
    event = sample_event("call.missed", "a", caller_name="x" * 100)
    event["padding"] = "y" * 5000
    async with running_daemon(settings) as daemon:
        status, body = await daemon.post("pbx", event, PBX_SECRET)
        # Without Content-Length (chunked), the limit still holds while reading.
        payload, headers = signed_request(event, PBX_SECRET)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 1000):
                yield payload[start : start + 1000]

        async with daemon.session.post(
            f"{daemon.base_url}/v1/webhooks/pbx", data=chunks(), headers=headers
        ) as response:
            chunked_status = response.status
    assert status == 413
    assert body["error"] == "body_too_large"
    assert chunked_status == 413


async def test_call_missed_for_unknown_account_is_stored_and_sends_nothing(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        status, _ = await daemon.post("pbx", sample_event("call.missed", "ghost"), PBX_SECRET)
    assert status == 202
    # Committed with the event, before the 202: no notice, and why.
    assert await db.fetchval("SELECT count(*) FROM notices") == 0
    decision = await db.fetchval("SELECT decision FROM events WHERE account_id = 'ghost'")
    assert decision["code"] == "unknown_account"
    assert smtp_sink.messages == []


async def test_only_validated_fields_are_stored(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    event = sample_event("call.missed", "acc-1")
    event["data"]["customer_notes"] = "private; not needed for any notice"
    async with running_daemon(settings) as daemon:
        status, _ = await daemon.post("pbx", event, PBX_SECRET)
    assert status == 202
    data = await db.fetchval("SELECT data FROM events")
    assert "customer_notes" not in data
    assert data["caller_number"] == "+40721555123"


async def test_readyz_healthz_and_metrics(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "m1"), BILLING_SECRET)
        await daemon.post("pbx", sample_event("call.missed", "m1"), OTHER_SECRET)
        async with daemon.session.get(f"{daemon.base_url}/healthz") as response:
            assert response.status == 200
        async with daemon.session.get(f"{daemon.base_url}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ready"
        async with daemon.session.get(f"{daemon.admin_url}/metrics") as response:
            assert response.status == 200
            metrics = await response.text()
    assert (
        'notifyd_webhooks_total{source="billing",status="202",type="account.created"} 1.0'
        in metrics
    )
    assert 'notifyd_webhooks_total{source="pbx",status="401",type="-"} 1.0' in metrics
    assert "notifyd_notices{" in metrics
    assert "notifyd_delivery_latency_seconds_bucket" in metrics


async def test_error_bodies_are_json_with_request_id(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with (
        running_daemon(settings) as daemon,
        daemon.session.get(
            f"{daemon.base_url}/v1/nothing-here", headers={"X-Request-Id": "req-123"}
        ) as response,
    ):
        assert response.status == 404
        assert response.headers["X-Request-Id"] == "req-123"
        assert json.loads(await response.text())["error"] == "not_found"


async def test_requests_without_an_id_get_one_of_this_process_each_its_own(
    tmp_path: Path, database_url: str
) -> None:
    """32 hex characters: one prefix for the process (unique_ids.py), a counter after."""
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    ids = []
    async with running_daemon(settings) as daemon:
        for _ in range(3):
            async with daemon.session.get(f"{daemon.base_url}/v1/nothing-here") as response:
                ids.append(response.headers["X-Request-Id"])
    assert len(set(ids)) == 3
    assert all(len(one) == 32 and int(one, 16) >= 0 for one in ids)
    assert len({one[:16] for one in ids}) == 1
