"""The admin lists' next page as a support agent asks for it: `before=` the last entry's
time pasted into the URL as the answer wrote it (`…+00:00`, which a URL's query reads as a
space), on the audit trail, an account's events and the dead letters."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, PBX_SECRET, Running, load_config, running_daemon
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


async def test_events_received_together_are_each_on_one_page(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    """Webhooks that arrive together are stored in one transaction, with one received_at
    (six missed calls posted at once: five shared it). A page that ends among them goes on
    from the last event's id as well as its time, so none is skipped nor shown twice."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await missed_calls(daemon, 6)
        # As one wave stores them: the five calls after the first share their moment.
        await db.execute(
            "UPDATE events SET received_at = '2026-12-05T11:08:25.974357Z'"
            " WHERE type = 'call.missed' AND data->>'call_id' <> 'call-0'"
        )
        listed = await every_page(daemon, "/v1/admin/subscribers/acc-1/events", "events")
        some_id = listed[0]
        alone = await call(daemon, "GET", f"/v1/admin/subscribers/acc-1/events?before_id={some_id}")
        # Failed notices a job gave up on together share their failed_at the same way.
        await db.execute(
            "UPDATE notices SET state = 'failed', failed_at = '2026-12-05T11:08:25.974357Z'"
        )
        dead = await every_page(daemon, "/v1/admin/dead-letters", "dead_letters")
    stored = await db.fetch("SELECT id FROM events WHERE account_id = 'acc-1'")
    assert sorted(listed) == sorted(str(row["id"]) for row in stored)
    assert len(listed) == 7
    assert alone[0] == 422
    assert "before" in alone[1]["fields"]["before_id"]
    failed = await db.fetch("SELECT id FROM notices")
    assert len(failed) >= 6
    assert sorted(dead) == sorted(str(row["id"]) for row in failed)


async def missed_calls(daemon: Running, count: int) -> None:
    """The account acc-1, and `count` missed calls of it (call-0, call-1, ...)."""
    await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
    for index in range(count):
        event = sample_event("call.missed", "acc-1")
        event["data"]["call_id"] = f"call-{index}"
        assert (await daemon.post("pbx", event, PBX_SECRET))[0] == 202


async def every_page(daemon: Running, path: str, key: str) -> list[str]:
    """The ids of every entry of a list, read two a page as the docs say to go on."""
    pages: list[list[str]] = []
    after = ""
    while len(pages) < 20:
        status, page = await call(daemon, "GET", f"{path}?limit=2{after}", READ_TOKEN)
        assert status == 200, page
        entries = page[key]
        pages.append([entry["event_id" if key == "events" else "id"] for entry in entries])
        if len(entries) < 2:
            break
        last = entries[-1]
        moment = last.get("received_at") or last.get("failed_at") or last["created_at"]
        after = f"&before={moment}&before_id={pages[-1][-1]}"
    return [entry_id for page in pages for entry_id in page]


async def test_a_subscribers_older_notices_are_reached_page_by_page(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    """ "Why did I not get last week's email?" of a busy line: the notices list showed the
    newest 500 at most and had no next page, so older notices could not be looked up. It
    pages as the events do, by created_at and id (a wave queues its notices together)."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await missed_calls(daemon, 5)
        await db.execute("UPDATE notices SET created_at = '2026-12-05T11:08:25.974357Z'")
        listed = await every_page(daemon, "/v1/admin/subscribers/acc-1/notices", "notices")
    stored = await db.fetch("SELECT id FROM notices WHERE account_id = 'acc-1'")
    assert len(stored) >= 5
    assert sorted(listed) == sorted(str(row["id"]) for row in stored)
