"""Delivery callbacks out (issue 19): a notice of a source's event, once delivered, failed or
given up, is told to that source's callback URL as a signed Standard Webhook, retried with
the same webhook-id until acknowledged, across restarts; a source without a callback gets
no rows and pays nothing."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    SmtpSink,
    eventually,
    load_config,
    running_daemon,
    spawn_daemon,
    write_config,
)
from tests.integration.admin_support import call
from tests.integration.callbacks_support import (
    CALLBACK_PATH,
    CALLBACK_SECRET,
    Receiver,
    callback_config,
    callback_receiver,
    callback_rows,
    wait_callback_state,
)


async def test_a_delivered_notice_is_told_once_acknowledged_with_one_webhook_id(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with callback_receiver(answers=[503, 500]) as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver)
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            status, answer = await daemon.post(
                "pbx", sample_event("call.missed", "acc-1"), PBX_SECRET, webhook_id="msg_pbx_1"
            )
            assert status == 202
            await smtp_sink.wait_for(2)
            [row] = await wait_callback_state(db, "delivered")
            async with daemon.session.get(f"{daemon.admin_url}/metrics") as response:
                metrics = await response.text()
        notice_id = await db.fetchval("SELECT id FROM notices WHERE kind = 'call.missed'")
    # The welcome email's source (billing) has no callback: only the call is told.
    assert [p.answered for p in receiver.posts] == [503, 500, 204]
    assert all(p.verified for p in receiver.posts)
    assert {p.webhook_id for p in receiver.posts} == {str(row["id"])}
    assert {p.raw for p in receiver.posts} == {receiver.posts[0].raw}
    assert (row["attempts"], row["last_error"]) == (3, "HTTP 204")
    body = receiver.posts[0].body
    assert body["type"] == "notice.delivered"
    assert body["data"] == {
        "event_id": answer["event_id"],
        "webhook_id": "msg_pbx_1",
        "event_type": "call.missed",
        "notice_id": str(notice_id),
        "state": "sent",
        "category": "calls",
        "smtp_code": 250,
    }
    # Nothing of the subscriber: no address, no number.
    assert b"@" not in receiver.posts[0].raw
    assert b"+40" not in receiver.posts[0].raw
    assert 'notifyd_callbacks_total{outcome="delivered"} 1.0' in metrics
    assert 'notifyd_callbacks_total{outcome="retry"} 2.0' in metrics


async def test_a_callback_survives_a_restart_and_no_log_line_shows_its_secret(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with callback_receiver(answers=[503]) as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver)
        path = write_config(tmp_path / "notifyd.toml", config)
        # Refused once, then held unanswered while the daemon stops.
        receiver.hang_from = 1
        first = await spawn_daemon(path)
        try:
            await _post_call(f"http://127.0.0.1:{first.port}")
            await smtp_sink.wait_for(2)
            await eventually(lambda: _posts_at_least(receiver, 2), "a post in progress")
        finally:
            first.process.send_signal(signal.SIGTERM)
            assert await first.wait_exit() == 0
        # The stop handed its claim back: the callback is due for any host at once, not at
        # the end of a 60-s lease.
        [waiting] = await callback_rows(db)
        assert (waiting["state"], waiting["claim_token"]) == ("pending", None)
        receiver.hang_from, receiver.then = None, 200
        receiver.released.set()
        second = await spawn_daemon(path)
        try:
            [row] = await wait_callback_state(db, "delivered")
        finally:
            second.process.send_signal(signal.SIGTERM)
            assert await second.wait_exit() == 0
    assert [p.answered for p in receiver.posts] == [503, 0, 200]
    assert {p.webhook_id for p in receiver.posts} == {str(row["id"])}
    assert all(p.verified for p in receiver.posts)
    text = "\n".join(map(str, first.lines + second.lines))
    assert "callback not acknowledged; will retry" in text
    assert "callback delivered" in text
    for secret in (CALLBACK_SECRET, CALLBACK_SECRET.removeprefix("whsec_"), CALLBACK_PATH):
        assert secret not in text
    assert "@client.example" not in text


async def test_a_refused_notice_is_told_failed_and_an_expired_one_dead_lettered(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with callback_receiver() as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver)
        # A lone refusal is told once the circuit breaker can no longer withdraw it: after
        # its cooldown, with no delivery in between (test_breaker.py).
        config["delivery"]["breaker_cooldown_seconds"] = 0.5
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            await smtp_sink.wait_for(1)
            smtp_sink.rcpt_replies.append("550 5.1.1 No such user")
            await daemon.post("pbx", sample_event("fax.sent", "acc-1"), PBX_SECRET)
            await wait_callback_state(db, "delivered")
            # A relay that keeps answering "later" until the call is past its lifetime.
            smtp_sink.rcpt_replies.extend(["451 4.7.1 Greylisted"] * 1000)
            await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
            await eventually(
                lambda: db.fetchval("SELECT attempts >= 2 FROM notices WHERE kind = 'call.missed'"),
                "the call retried",
            )
            await db.execute(
                "UPDATE notices SET created_at = created_at - interval '25 hours'"
                " WHERE kind = 'call.missed'"
            )
            rows = await wait_callback_state(db, "delivered", 2)
    told = {p.body["data"]["event_type"]: p.body for p in receiver.posts}
    assert len(receiver.posts) == 2
    assert all(p.verified for p in receiver.posts)
    assert told["fax.sent"]["type"] == "notice.failed"
    assert (told["fax.sent"]["data"]["state"], told["fax.sent"]["data"]["smtp_code"]) == (
        "failed",
        550,
    )
    assert told["call.missed"]["type"] == "notice.dead_lettered"
    assert told["call.missed"]["data"]["smtp_code"] == 451
    assert {r["type"] for r in rows} == {"notice.failed", "notice.dead_lettered"}


async def test_only_the_sources_with_a_callback_get_rows(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with callback_receiver() as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver, "billing")
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
            await smtp_sink.wait_for(2)
            [row] = await wait_callback_state(db, "delivered")
        sent = await db.fetchval("SELECT count(*) FROM notices WHERE state = 'sent'")
    assert sent == 2
    assert (row["source"], row["event_type"]) == ("billing", "account.created")
    assert [p.body["data"]["event_type"] for p in receiver.posts] == ["account.created"]


async def test_without_any_callback_no_row_is_written(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with callback_receiver() as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver)
        del config["sources.pbx.callback"]
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            smtp_sink.rcpt_replies.append("550 5.1.1 No such user")
            await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
            await daemon.post("pbx", sample_event("fax.sent", "acc-1"), PBX_SECRET)
            await smtp_sink.wait_for(2)
            await eventually(
                lambda: db.fetchval(
                    "SELECT count(*) = 3 FROM notices WHERE state IN ('sent', 'failed')"
                ),
                "every notice settled",
            )
    assert await callback_rows(db) == []
    assert receiver.posts == []


async def test_a_callback_never_acknowledged_is_given_up_with_why(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with callback_receiver(then=500) as receiver:
        config = callback_config(
            tmp_path, database_url, smtp_sink.port, receiver, max_age_hours=0.0003
        )
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
            [row] = await wait_callback_state(db, "abandoned")
            posts = len(receiver.posts)
            await asyncio.sleep(0.5)  # retries are 0.1-0.3 s apart: none may follow
    assert posts >= 1
    assert len(receiver.posts) == posts
    assert row["last_error"].startswith("given up after 0.0 h (max_age_hours)")
    assert row["last_error"].endswith("last answer: HTTP 500")


async def _post_call(base_url: str) -> None:
    import aiohttp

    from tests.conftest import signed_request

    async with aiohttp.ClientSession() as session:
        for source, event, secret in (
            ("billing", sample_event("account.created", "acc-1"), BILLING_SECRET),
            ("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET),
        ):
            body, headers = signed_request(event, secret)
            async with session.post(
                f"{base_url}/v1/webhooks/{source}", data=body, headers=headers
            ) as response:
                assert response.status == 202


async def _posts_at_least(receiver: Receiver, count: int) -> bool:
    return len(receiver.posts) >= count


async def test_callbacks_are_exported_and_erased_even_of_the_billing_notices_kept(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with callback_receiver() as receiver:
        config = callback_config(tmp_path, database_url, smtp_sink.port, receiver, "billing")
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            paid = sample_event("billing.credit_added", "acc-1")
            assert (await daemon.post("billing", paid, BILLING_SECRET))[0] == 202
            rows = await wait_callback_state(db, "delivered", 2)
            exported = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/export")
            assert (await call(daemon, "DELETE", "/v1/admin/subscribers/acc-1"))[0] == 200
        kept = await db.fetchval("SELECT count(*) FROM notices WHERE category = 'billing'")
    assert exported[0] == 200
    assert {c["id"] for c in exported[1]["callbacks"]} == {str(r["id"]) for r in rows}
    # The billing notice stays, stripped, for accounting; what was told of it does not.
    assert kept == 1
    assert await callback_rows(db) == []
