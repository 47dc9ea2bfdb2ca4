"""What several test files do to a running daemon as an admin or a billing system would."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from notifyd.catalogue.samples import SAMPLE_BROADCASTS, sample_event
from notifyd.settings import Settings
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    DaemonProcess,
    Running,
    SmtpSink,
    load_config,
)
from tests.integration.admin_support import OPS_TOKEN, admin_config, call


async def broadcast(daemon: DaemonProcess) -> None:
    import aiohttp

    body = {"kind": "notice.service", **SAMPLE_BROADCASTS["notice.service"]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{daemon.admin_url}/v1/admin/broadcasts",
            json=body,
            headers={"Authorization": f"Bearer {OPS_TOKEN}"},
        ) as response,
    ):
        assert response.status == 202, await response.text()


def settings_for(tmp_path: Path, database_url: str, smtp_port: int | None) -> Settings:
    return load_config(tmp_path, admin_config(tmp_path, database_url, smtp_port))


async def subscribe(
    daemon: Running, account: str, preferences: dict[str, Any], **data: Any
) -> None:
    """account.created, then the preferences through the admin API."""
    created = sample_event("account.created", account, **data)
    assert (await daemon.post("billing", created, BILLING_SECRET))[0] == 202
    status, body = await call(
        daemon,
        "PATCH",
        f"/v1/admin/subscribers/{account}/preferences",
        json={"quiet_hours": "", **preferences},
    )
    assert status == 200, body


async def post(daemon: Running, event_type: str, account: str, **data: Any) -> dict[str, Any]:
    status, body = await daemon.post("pbx", sample_event(event_type, account, **data), PBX_SECRET)
    assert status == 202, body
    return body


def form_token(page: str) -> str:
    """The token the page puts in its form, without which a POST is refused."""
    found = re.search(r'name="form_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def submit(daemon: Any, link: str, form: dict[str, str]) -> tuple[int, str]:
    """Fill in and send the form of the page at `link`, as the subscriber's browser does."""
    async with daemon.session.get(link) as page:
        token = form_token(await page.text())
    async with daemon.session.post(link, data={**form, "form_token": token}) as response:
        return response.status, await response.text()


async def welcome(daemon: Any, smtp_sink: SmtpSink, account: str = "acc-1") -> str:
    event = sample_event("account.created", account, email=f"{account}@client.example")
    status, _ = await daemon.post("billing", event, BILLING_SECRET)
    assert status == 202
    messages = await smtp_sink.wait_for(1)
    return preferences_link(messages[-1])


def preferences_link(mail: EmailMessage) -> str:
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"(https?://\S+/v1/preferences/\S+)", text)
    assert found, text
    return found.group(1)
