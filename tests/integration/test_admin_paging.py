"""The admin lists' next page as a support agent asks for it: `before=` the last entry's
time pasted into the URL as the answer wrote it (`…+00:00`, which a URL's query reads as a
space), on the audit trail, an account's events and the dead letters."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, load_config, running_daemon
from tests.integration.admin_support import READ_TOKEN, admin_config, call


async def test_before_pasted_as_the_answer_wrote_it_gives_the_next_page(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        for account in ("acc-1", "acc-2", "acc-3"):
            await daemon.post("billing", sample_event("account.created", account), BILLING_SECRET)
        for index in range(3):
            await call(daemon, "PATCH", "/v1/admin/subscribers/acc-1", json={"name": f"N{index}"})
        _, first = await call(daemon, "GET", "/v1/admin/audit?limit=2", READ_TOKEN)
        at = first["entries"][-1]["at"]
        assert at.endswith("+00:00")
        # Pasted as is: the '+' arrives as a space.
        audit = await call(daemon, "GET", f"/v1/admin/audit?limit=2&before={at}", READ_TOKEN)
        # The same moment written in the agent's own zone, unencoded too.
        local = await call(
            daemon, "GET", "/v1/admin/audit?limit=9&before=2999-01-01T02:00:00+02:00", READ_TOKEN
        )
        _, events = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/events", READ_TOKEN)
        received = events["events"][0]["received_at"]
        older = await call(
            daemon, "GET", f"/v1/admin/subscribers/acc-1/events?before={received}", READ_TOKEN
        )
        dead = await call(daemon, "GET", f"/v1/admin/dead-letters?before={received}", READ_TOKEN)
        # A time still unreadable says what to do about the '+'.
        wrong = await call(daemon, "GET", "/v1/admin/audit?before=yesterday+02:00", READ_TOKEN)
    stored = [row["id"] for row in await db.fetch("SELECT id FROM audit ORDER BY at DESC, id")]
    assert audit[0] == 200, audit
    assert [entry["id"] for entry in first["entries"] + audit[1]["entries"]] == stored[:4]
    assert local[0] == 200, local
    assert len(local[1]["entries"]) == len(stored)
    assert older == (200, {"account_id": "acc-1", "subscriber": True, "events": []})
    assert dead == (200, {"dead_letters": []})
    assert wrong[0] == 422
    assert "%2B" in wrong[1]["fields"]["before"]
