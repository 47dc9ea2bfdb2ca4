"""A subscriber read, corrected and written back whole, as a support agent does it: the
answer of GET, one field changed, sent as the PUT (or the PATCH). The fields the answer
shows that PUT does not set (the account id, closed_at, restricted_at, the preferences
voicemail_audio and low_credit_threshold) are taken when they say what is stored, and a
different value is refused naming where it is changed; the whole answer was refused,
'Extra inputs are not permitted' under 'give every field'."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, load_config, running_daemon
from tests.integration.admin_support import OPS_TOKEN, admin_config, call

SUBSCRIBER = "/v1/admin/subscribers/acc-1"


async def test_the_answer_of_get_written_back_corrects_the_subscriber(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        await call(daemon, "PUT", f"{SUBSCRIBER}/restriction")
        _, read = await call(daemon, "GET", SUBSCRIBER)
        put = await call(daemon, "PUT", SUBSCRIBER, json={**read, "name": "Ana Corrected"})
        patch = await call(daemon, "PATCH", SUBSCRIBER, json={**read, "name": "Ana Patched"})
        changed = {
            **read,
            "account_id": "acc-2",
            "voicemail_audio": False,
            "restricted_at": None,
            "low_credit_threshold": "5.00",
        }
        refused = await call(daemon, "PUT", SUBSCRIBER, json=changed)
        stored = await db.fetchrow("SELECT * FROM subscribers WHERE account_id = 'acc-1'")
    assert put == (200, {**read, "name": "Ana Corrected"})
    assert patch == (200, {**read, "name": "Ana Patched"})
    assert refused[0] == 422
    assert refused[1]["fields"] == {
        "account_id": "is the account of the path, acc-1: leave it out or give that",
        "voicemail_audio": "is a preference: change it with PATCH .../preferences",
        "low_credit_threshold": "is a preference: change it with PATCH .../preferences",
        "restricted_at": "is set by PUT and DELETE .../restriction",
    }
    assert "give every field" not in refused[1]["detail"]
    assert stored is not None
    assert (stored["name"], stored["voicemail_audio"]) == ("Ana Patched", True)


async def test_the_wrong_method_is_told_which_ones_the_route_takes(
    tmp_path: Path, database_url: str
) -> None:
    """POST to a subscriber (an agent guessing how to create one) is a 405 with the methods
    the route takes in `Allow`, as RFC 9110 requires of a 405; the header was dropped when the
    answer was rewritten as the JSON error."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    async with (
        running_daemon(settings) as daemon,
        daemon.session.post(f"{daemon.admin_url}{SUBSCRIBER}", headers=headers) as response,
    ):
        status, allow, body = response.status, response.headers.get("Allow"), await response.json()
    assert (status, body["error"]) == (405, "method_not_allowed")
    assert allow is not None
    assert set(allow.replace(" ", "").split(",")) >= {"GET", "PUT", "PATCH", "DELETE"}
