"""Marketing offers go only to subscribers with consent who did not unsubscribe, and every
one carries a working one-click unsubscribe link (RFC 8058) that takes effect at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from notifyd.catalogue.samples import SAMPLE_BROADCASTS, sample_event
from tests.conftest import BILLING_SECRET, SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config, call
from tests.integration.queue_support import settled_notices


async def setup_accounts(daemon: Any) -> None:
    for account in ("acc-yes", "acc-no", "acc-gone"):
        event = sample_event("account.created", account, email=f"{account}@client.example")
        await daemon.post("billing", event, BILLING_SECRET)
    for account in ("acc-yes", "acc-gone"):
        await call(
            daemon,
            "POST",
            f"/v1/admin/subscribers/{account}/consent",
            json={"marketing": True, "source": "subscriber", "wording_version": "v1"},
        )
    await call(
        daemon,
        "POST",
        "/v1/admin/subscribers/acc-gone/consent",
        json={"marketing": False, "source": "subscriber", "wording_version": "v1"},
    )


async def offer(daemon: Any) -> dict[str, Any]:
    body = {"kind": "marketing.offer", **SAMPLE_BROADCASTS["marketing.offer"]}
    status, created = await call(daemon, "POST", "/v1/admin/broadcasts", json=body)
    assert status == 202
    async with asyncio.timeout(10):
        while (await call(daemon, "GET", f"/v1/admin/broadcasts/{created['id']}"))[1][
            "state"
        ] != "done":
            await asyncio.sleep(0.05)
    return created


async def test_offers_reach_only_consenting_subscribers_with_an_unsubscribe_link(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await setup_accounts(daemon)
        await smtp_sink.wait_for(3)  # the welcome emails
        await offer(daemon)  # fanned out to the end: its notices are all queued
        messages = await smtp_sink.wait_for(4)
        await settled_notices(db)
        mail = messages[3]
        link = mail["List-Unsubscribe"].strip("<>")
        async with daemon.session.get(link) as page:
            form = await page.text()
            form_status = page.status
        still = await call(daemon, "GET", "/v1/admin/subscribers/acc-yes/consent")
        async with daemon.session.post(link, data={"List-Unsubscribe": "One-Click"}) as response:
            unsubscribed = response.status
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-yes/consent")
        async with daemon.session.post(
            link.replace("/v1/unsubscribe/", "/v1/unsubscribe/x")
        ) as bad:
            bad_status = bad.status
        # A second offer now reaches nobody.
        await offer(daemon)
        await settled_notices(db)
    assert len(smtp_sink.messages) == 4
    assert mail["To"] == "acc-yes@client.example"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.startswith(daemon.base_url + "/v1/unsubscribe/")
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert link in text
    assert form_status == 200
    assert "<form" in form
    assert still[1]["marketing"]["sendable"] is True  # looking at the page changes nothing
    assert unsubscribed == 200
    assert after[1]["marketing"] == {"consent": False, "suppressed": True, "sendable": False}
    assert after[1]["history"][0]["source"] == "unsubscribe-link"
    assert bad_status == 404
    kinds = await db.fetch(
        "SELECT account_id FROM notices WHERE kind = 'marketing.offer' ORDER BY account_id"
    )
    assert [row["account_id"] for row in kinds] == ["acc-yes"]


async def test_only_the_subscribers_own_consent_brings_offers_back(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await setup_accounts(daemon)
        await call(
            daemon,
            "POST",
            "/v1/admin/subscribers/acc-gone/consent",
            json={"marketing": True, "source": "admin", "wording_version": "v2"},
        )
        await offer(daemon)
        await call(
            daemon,
            "POST",
            "/v1/admin/subscribers/acc-gone/consent",
            json={"marketing": True, "source": "subscriber", "wording_version": "v2"},
        )
        await offer(daemon)  # fanned out to the end: its notices are all queued
    rows = await db.fetch(
        "SELECT account_id, count(*) AS n FROM notices WHERE kind = 'marketing.offer'"
        " GROUP BY account_id ORDER BY account_id"
    )
    assert [(r["account_id"], r["n"]) for r in rows] == [("acc-gone", 1), ("acc-yes", 2)]
