"""The Asterisk callback receiver of docs/integrations.md ("Delivery callbacks"), run as
written against a running notifyd: a voicemail's recording is deleted once its email was
accepted, a forged post is refused, and another event's callback leaves it alone."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

import aiohttp

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    OTHER_SECRET,
    PBX_SECRET,
    SmtpSink,
    eventually,
    load_config,
    running_daemon,
    signed_request,
)
from tests.integration.callbacks_support import CALLBACK_SECRET, callback_config, callback_receiver

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def receiver_script() -> str:
    text = DOC.read_text("utf-8")
    found = re.search(
        r"<!-- snippet: asterisk-callback-receiver .*?-->\n```python\n(.*?)```", text, re.S
    )
    assert found, "the receiver's snippet is gone from docs/integrations.md"
    return found.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_documented_receiver_deletes_a_voicemail_once_its_email_was_accepted(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    script = tmp_path / "receiver.py"
    script.write_text(receiver_script())
    maps, inbox = tmp_path / "map", tmp_path / "INBOX"
    maps.mkdir()
    inbox.mkdir()
    for name in ("msg0003.wav", "msg0003.txt", "msg0004.wav"):
        (inbox / name).write_bytes(b"x")
    (maps / "vm-default-1001-3").write_text(f"{inbox / 'msg0003'}\n")
    port = free_port()
    env = {**os.environ, "NOTIFYD_CALLBACK_SECRET": CALLBACK_SECRET, "VM_MAP_DIR": str(maps)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env={**env, "PORT": str(port)}
    )
    url = f"http://127.0.0.1:{port}/notifyd-callback"
    try:
        async with aiohttp.ClientSession() as session:

            async def forged() -> int | None:
                body, headers = signed_request({"type": "notice.delivered"}, OTHER_SECRET)
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        return response.status
                except aiohttp.ClientConnectionError:
                    return None  # not listening yet

            assert await eventually(forged, "the receiver listening") == 401
        # The config points the callback at the documented receiver instead of the test's.
        async with callback_receiver() as unused:
            config = callback_config(tmp_path, database_url, smtp_sink.port, unused)
        config["sources.pbx.callback"]["url"] = url
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            created = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
            call = sample_event("call.missed", "acc-1")
            assert (await daemon.post("pbx", call, PBX_SECRET, webhook_id="call-1"))[0] == 202
            voicemail = sample_event("voicemail.received", "acc-1")
            status, _ = await daemon.post(
                "pbx", voicemail, PBX_SECRET, webhook_id="vm-default-1001-3"
            )
            assert status == 202
            await smtp_sink.wait_for(3)

            async def acknowledged() -> bool:
                count = await daemon.daemon.database.pool.fetchval(  # type: ignore[union-attr]
                    "SELECT count(*) FROM callbacks WHERE state = 'delivered'"
                )
                return bool(count == 2)

            await eventually(acknowledged, "both callbacks acknowledged")
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)
    assert sorted(p.name for p in inbox.iterdir()) == ["msg0004.wav"]
    assert list(maps.iterdir()) == []
