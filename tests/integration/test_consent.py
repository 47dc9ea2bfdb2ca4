"""Marketing consent: off until recorded, history kept, and a withdrawal's suppression that
only the subscriber's own consent lifts."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, load_config, running_daemon
from tests.integration.admin_support import admin_config, call

CONSENT = "/v1/admin/subscribers/acc-1/consent"


def consent(granted: bool, source: str, wording: str = "2026-11") -> dict[str, object]:
    return {"marketing": granted, "source": source, "wording_version": wording}


async def test_marketing_is_off_until_consent_is_recorded_with_its_history(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        before = await call(daemon, "GET", CONSENT)
        granted = await call(daemon, "POST", CONSENT, json=consent(True, "subscriber"))
        after = await call(daemon, "GET", CONSENT)
    assert before[1]["marketing"] == {"consent": False, "suppressed": False, "sendable": False}
    assert granted[0] == 201
    assert granted[1]["event"]["wording_version"] == "2026-11"
    assert granted[1]["event"]["recorded_by"] == "ops"
    assert after[1]["marketing"] == {"consent": True, "suppressed": False, "sendable": True}
    assert [e["granted"] for e in after[1]["history"]] == [True]


async def test_a_withdrawal_suppresses_the_address_until_the_subscriber_consents_again(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        event = sample_event("account.created", "acc-1", email="ana@client.example")
        await daemon.post("billing", event, BILLING_SECRET)
        await call(daemon, "POST", CONSENT, json=consent(True, "subscriber"))
        withdrawn = await call(daemon, "POST", CONSENT, json=consent(False, "unsubscribe-link"))
        by_admin = await call(daemon, "POST", CONSENT, json=consent(True, "admin"))
        by_import = await call(daemon, "POST", CONSENT, json=consent(True, "import"))
        # An account.updated and an API update of the same subscriber change nothing.
        updated = sample_event("account.updated", "acc-1", email="ana@client.example")
        await daemon.post("billing", updated, BILLING_SECRET)
        await call(
            daemon, "PATCH", "/v1/admin/subscribers/acc-1", json={"email": "ana@client.example"}
        )
        still = await call(daemon, "GET", CONSENT)
        own = await call(daemon, "POST", CONSENT, json=consent(True, "subscriber", "2026-12"))
        history = await call(daemon, "GET", CONSENT)
    assert withdrawn[1]["marketing"]["suppressed"] is True
    assert by_admin[1]["marketing"] == {"consent": True, "suppressed": True, "sendable": False}
    assert by_import[1]["marketing"]["sendable"] is False
    assert still[1]["marketing"]["sendable"] is False
    assert own[1]["marketing"] == {"consent": True, "suppressed": False, "sendable": True}
    sources = [(e["granted"], e["source"]) for e in history[1]["history"]]
    assert sources == [
        (True, "subscriber"),
        (True, "import"),
        (True, "admin"),
        (False, "unsubscribe-link"),
        (True, "subscriber"),
    ]
    assert await db.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_consent_fields_are_validated(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        invalid = await call(daemon, "POST", CONSENT, json={"marketing": "yes", "source": ""})
        unknown = await call(
            daemon,
            "POST",
            "/v1/admin/subscribers/ghost/consent",
            json=consent(True, "subscriber"),
        )
    assert invalid[0] == 422
    assert set(invalid[1]["fields"]) == {"marketing", "source", "wording_version"}
    assert unknown[0] == 404
