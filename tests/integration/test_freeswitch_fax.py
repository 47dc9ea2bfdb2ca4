"""contrib/freeswitch/notifyd_fax.lua under the Debian Lua interpreter, against a real
notifyd: a fax received (its TIFF reaches the subscriber as a PDF), sent and failed, with the
hook set as the dialplan and the originate of docs/integrations.md set it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import asyncpg
from PIL import Image

from tests.conftest import BILLING_SECRET, Running, SmtpSink, running_daemon
from tests.integration.catalogue_support import sending_settings
from tests.integration.freeswitch_support import STARTED, leg, needs_lua, run_hook
from tests.integration.send_support import snippet

pytestmark = needs_lua
RX = re.search(r"api_hangup_hook=lua (\S+) (\w+)", snippet("freeswitch-rxfax"))
TX = re.search(r"api_hangup_hook='lua (\S+) (\w+)'", snippet("freeswitch-txfax"))
TX_VARS = dict(re.findall(r"(notifyd_\w+)=([^,}]+)", snippet("freeswitch-txfax")))


def tiff(pages: int) -> bytes:
    """A fax as spandsp writes it: a multi-page bilevel TIFF."""
    images = [Image.new("1", (1728, 200), 1) for _ in range(pages)]
    out = io.BytesIO()
    images[0].save(out, "TIFF", save_all=True, append_images=images[1:], compression="group4")
    return out.getvalue()


async def subscriber(daemon: Running, account: str) -> None:
    created = {
        "type": "account.created",
        "timestamp": "2026-01-01T09:00:00Z",
        "data": {"account_id": account, "email": f"{account}@client.example", "username": "f"},
    }
    assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202


async def test_a_fax_received_sent_and_failed_each_reach_the_subscriber(
    tmp_path: Path, database_url: str, db: asyncpg.Connection, smtp_sink: SmtpSink
) -> None:
    assert RX, "the doc's rxfax snippet sets no api_hangup_hook"
    assert TX, "the doc's txfax snippet sets no api_hangup_hook"
    document = tmp_path / "fax-in.tif"
    document.write_bytes(tiff(2))
    spandsp = {"fax_success": "1", "fax_document_transferred_pages": "2", "fax_result_code": "0"}
    received = leg(
        "aa000000-0000-4000-8000-0000000000f1",
        a_leg="aa000000-0000-4000-8000-0000000000f1",
        notifyd_fax_file=str(document),
        fax_remote_station_id="VOIP FAX",
        end_epoch=str(STARTED + 60),
        **spandsp,
    )
    account = TX_VARS["notifyd_account"]
    outgoing = {**TX_VARS, "destination_number": TX_VARS["notifyd_fax_number"]}
    sent = leg(
        "bb000000-0000-4000-8000-0000000000f2",
        a_leg="bb000000-0000-4000-8000-0000000000f2",
        **outgoing,
        **spandsp,
    )
    failed = leg(
        "cc000000-0000-4000-8000-0000000000f3",
        a_leg="cc000000-0000-4000-8000-0000000000f3",
        **outgoing,
        fax_success="0",
        fax_document_transferred_pages="1",
        fax_result_text="Far end cannot receive at the resolution of the image",
    )
    settings = sending_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await subscriber(daemon, "acc-fs")
        await subscriber(daemon, account)
        await run_hook(tmp_path, daemon.base_url, RX.group(1), "env", received, RX.group(2))
        for channel in (sent, failed):
            await run_hook(tmp_path, daemon.base_url, TX.group(1), "env", channel, TX.group(2))
        await smtp_sink.wait_for(5)
    rows = await db.fetch("SELECT type, data FROM events WHERE type LIKE 'fax.%' ORDER BY type")
    by_type = {row["type"]: row["data"] for row in rows}
    assert sorted(by_type) == ["fax.failed", "fax.received", "fax.sent"]
    assert by_type["fax.received"]["pages"] == 2
    assert by_type["fax.received"]["remote_number"] == "+40721555123"
    assert by_type["fax.sent"]["remote_number"] == "+40312000200"
    assert by_type["fax.failed"]["reason"].startswith("Far end cannot receive")
    pdfs = [
        part.get_payload(decode=True)
        for message in smtp_sink.messages
        for part in message.walk()
        if part.get_content_type() == "application/pdf"
    ]
    [pdf] = pdfs  # the TIFF, made a PDF by notifyd
    assert isinstance(pdf, bytes)
    assert pdf.startswith(b"%PDF")
