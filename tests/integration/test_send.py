"""`notifyd send` against a real daemon, as a PBX's dialplan and a cron drain run it: retries
under one webhook-id, the spool while notifyd is down, refusals in one line, the time bound."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event, sample_wav
from tests.conftest import BILLING_SECRET, PBX_SECRET, SmtpSink, running_daemon
from tests.integration.catalogue_support import sending_settings
from tests.integration.send_support import (
    flaky_proxy,
    one_line,
    secret_file,
    send,
    silent_server,
    webhook_ids,
)


async def test_two_503_then_accepted_is_one_event_one_email_under_one_webhook_id(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon, flaky_proxy(daemon.base_url, 2) as (url, proxy):
        ran = await send(
            *("--type", "account.created", "--account", "acc-7"),
            *("--data", "email=acc-7@client.example", "--data", "username=0721000007"),
            *("--url", f"{url}/v1/webhooks/billing"),
            *("--secret-file", str(secret_file(tmp_path, BILLING_SECRET)), "--timeout", "10"),
        )
        assert ran.code == 0, ran
        await smtp_sink.wait_for(1)
    ids = {webhook_id for _, webhook_id in proxy.seen}
    assert len(proxy.seen) == 3
    assert len(ids) == 1
    assert await webhook_ids(db) == list(ids)
    assert ids.pop() in one_line(ran.out)
    # The username, digits as they were typed, stays text: KEY=VALUE is never a number.
    assert await db.fetchval("SELECT data->>'username' FROM events") == "0721000007"
    # Retry-After: 1 was waited for, not the half-second back-off of a network fault.
    assert proxy.seen[1][0] - proxy.seen[0][0] >= 0.9
    assert len(smtp_sink.messages) == 1


async def test_a_stopped_daemon_gets_the_event_from_the_spool_once_it_is_back(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        stopped = daemon.base_url
    folder = tmp_path / "spool"
    event = sample_event("account.created", "acc-8", email="acc-8@client.example")
    env = {"NOTIFYD_SEND_SECRET": BILLING_SECRET}
    url = f"{stopped}/v1/webhooks/billing"
    ran = await send(
        "-", "--url", url, "--timeout", "2", "--spool", str(folder),
        env=env, stdin=json.dumps(event).encode(),
    )  # fmt: skip
    assert ran.code == 0, ran
    assert "spooled" in one_line(ran.err)
    assert ran.seconds < 2 + 3  # its bound, and the start of a process on a loaded machine
    [spooled] = [path for path in folder.iterdir() if path.suffix == ".json"]
    webhook_id = json.loads(spooled.read_text())["webhook_id"]
    assert webhook_id in ran.err

    async with running_daemon(settings) as daemon:
        url = f"{daemon.base_url}/v1/webhooks/billing"
        drained = await send("--drain", str(folder), "--url", url, env=env)
        assert drained.code == 0, drained
        assert "1 accepted" in one_line(drained.out)
        await smtp_sink.wait_for(1)
        # Drained again (the next timer): nothing left, nothing posted twice.
        again = await send("--drain", str(folder), "--url", url, env=env)
    assert again.code == 0, again
    assert "0 accepted" in again.out
    assert not spooled.exists()
    assert await webhook_ids(db) == [webhook_id]
    assert len(smtp_sink.messages) == 1


async def test_a_refused_event_exits_65_with_notifyds_reason_in_one_line(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = sending_settings(tmp_path, database_url, SmtpSink())
    async with running_daemon(settings) as daemon:
        url = f"{daemon.base_url}/v1/webhooks/pbx"
        wrong_secret = await send(
            *("--type", "call.missed", "--account", "acc-1", "--url", url),
            env={"NOTIFYD_SEND_SECRET": BILLING_SECRET},
        )
        unknown_type = await send(
            *("--type", "call.dropped", "--account", "acc-1", "--url", url),
            env={"NOTIFYD_SEND_SECRET": PBX_SECRET},
        )
    assert wrong_secret.code == 65, wrong_secret
    assert one_line(wrong_secret.err).startswith("notifyd send: notifyd refused the event: 401")
    assert unknown_type.code == 65, unknown_type
    assert "422" in one_line(unknown_type.err)
    assert "call.dropped" in unknown_type.err
    assert await webhook_ids(db) == []


async def test_no_secret_is_a_usage_error_before_anything_is_sent(tmp_path: Path) -> None:
    ran = await send("--type", "call.missed", "--account", "a", "--url", "http://127.0.0.1:9/")
    assert ran.code == 2
    assert "NOTIFYD_SEND_SECRET" in one_line(ran.err)


async def test_a_server_that_never_answers_is_given_up_at_the_timeout(tmp_path: Path) -> None:
    secret = str(secret_file(tmp_path, PBX_SECRET))
    arguments = ("--type", "call.missed", "--account", "a", "--secret-file", secret)
    async with silent_server() as url:
        target = ("--url", f"{url}/v1/webhooks/pbx", "--timeout", "1.5")
        unreachable = await send(*arguments, *target)
        spooled = await send(*arguments, *target, "--spool", str(tmp_path / "spool"))
    assert unreachable.code == 69, unreachable
    assert "no answer before the time bound" in one_line(unreachable.err)
    assert spooled.code == 0, spooled
    for ran in (unreachable, spooled):
        assert 1.4 <= ran.seconds < 1.5 + 3  # it waited, and no longer than its bound allows
    assert len(list((tmp_path / "spool").glob("*.json"))) == 1


async def test_a_drain_leaves_the_spool_to_the_drain_that_holds_it(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "00000000000000000001-msg_1.json").write_text("{}")
    lock = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other drain, still posting
        ran = await send(
            "--drain", str(folder), "--secret-file", str(secret_file(tmp_path, PBX_SECRET))
        )
    finally:
        os.close(lock)
    assert ran.code == 0, ran
    assert "another drain is running" in one_line(ran.out)
    assert (folder / "00000000000000000001-msg_1.json").exists()


async def test_a_drain_sets_aside_what_notifyd_refuses_and_posts_the_rest(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    folder = tmp_path / "spool"
    env = {"NOTIFYD_SEND_SECRET": PBX_SECRET}
    missed = sample_event("call.missed", "acc-1")
    for event in ({**missed, "type": "call.dropped"}, missed):
        ran = await send(
            *("-", "--url", "http://127.0.0.1:9/v1/webhooks/pbx", "--timeout", "0.2"),
            *("--spool", str(folder)),
            env=env,
            stdin=json.dumps(event).encode(),
        )
        assert ran.code == 0, ran
    settings = sending_settings(tmp_path, database_url, SmtpSink())
    async with running_daemon(settings) as daemon:
        url = f"{daemon.base_url}/v1/webhooks/pbx"
        drained = await send("--drain", str(folder), "--url", url, env=env)
    assert drained.code == 65, drained
    assert "1 accepted, 1 set aside" in one_line(drained.out)
    [kept] = (folder / "rejected").iterdir()
    record = json.loads(kept.read_text())
    assert record["rejected"]["status"] == 422
    assert "call.dropped" in record["body"]
    assert list(folder.glob("*.json")) == []
    assert len(await webhook_ids(db)) == 1


async def test_a_recording_attached_with_attach_reaches_the_subscriber_as_it_was(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """--attach audio=PATH: the voicemail a PBX recorded goes in the event, named and typed
    by its file, and comes out of the email byte for byte."""
    recording = tmp_path / "msg0001.wav"
    recording.write_bytes(sample_wav())
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        created = await send(
            *("--type", "account.created", "--account", "acc-1"),
            *("--data", "email=acc-1@client.example", "--data", "username=101"),
            *("--url", f"{daemon.base_url}/v1/webhooks/billing"),
            env={"NOTIFYD_SEND_SECRET": BILLING_SECRET},
        )
        assert created.code == 0, created
        ran = await send(
            *("--type", "voicemail.received", "--account", "acc-1", "--data", "mailbox=101"),
            *("--data", "caller_number=+40721000001", "--data", "duration_seconds:=1"),
            *("--data", "received_at=2026-12-05T10:00:00Z", "--attach", f"audio={recording}"),
            *("--url", f"{daemon.base_url}/v1/webhooks/pbx"),
            env={"NOTIFYD_SEND_SECRET": PBX_SECRET},
        )
        assert ran.code == 0, ran
        await smtp_sink.wait_for(2)
    parts = [
        part
        for message in smtp_sink.messages
        for part in message.walk()
        if part.get_filename() == "msg0001.wav"
    ]
    assert [p.get_content_type() for p in parts] == ["audio/wav"]
    assert parts[0].get_payload(decode=True) == sample_wav()


async def test_an_attachment_that_cannot_be_read_is_one_line_and_nothing_sent(
    tmp_path: Path,
) -> None:
    missing = await send(
        *("--type", "voicemail.received", "--account", "acc-1"),
        *("--attach", f"audio={tmp_path / 'gone.wav'}", "--url", "http://127.0.0.1:9/x"),
        env={"NOTIFYD_SEND_SECRET": PBX_SECRET},
    )
    malformed = await send(
        *("--type", "voicemail.received", "--account", "acc-1", "--attach", "audio"),
        *("--url", "http://127.0.0.1:9/x"),
        env={"NOTIFYD_SEND_SECRET": PBX_SECRET},
    )
    assert missing.code == 2, missing
    assert "gone.wav" in one_line(missing.err)
    assert malformed.code == 2, malformed
    assert "--attach takes KEY=PATH" in one_line(malformed.err)
