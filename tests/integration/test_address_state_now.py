"""An address's state acts at once for every account that writes to it (SPEC §2, issue 18):
an address unsubscribed from marketing (one-click, an admin, an import) cancels the offers
of other accounts waiting for it, and an address marked undeliverable by a hard bounce
cancels their non-mandatory notices, in the transaction that changes the address, not
only as each is claimed. Addresses compare without regard to case. End to end: webhooks and
broadcasts in, a real SMTP sink out, the clock moved past quiet hours."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from notifyd.storage.waiting import UNDELIVERABLE, UNSUBSCRIBED
from tests.conftest import Running, SmtpSink, eventually, running_daemon
from tests.integration.admin_support import call
from tests.integration.consent_now_support import (
    WITHDRAWALS,
    broadcast,
    move_clock_past_waits,
    quiet_now,
    settings_for,
    settled,
    withdraw,
)
from tests.integration.daemon_support import post, subscribe
from tests.integration.queue_support import settled_notices

ANA = "ana@client.example"
# The office account copies every notice to Ana, written as its admin typed it.
ANA_TYPED = "Ana@Client.EXAMPLE"
OFFICE = "office@client.example"
USER_UNKNOWN = "550 5.1.1 <mailbox>: Recipient address rejected: User unknown"


async def _two_accounts_one_address(daemon: Running, *, ana_quiet: bool) -> None:
    """acc-1 is Ana's; acc-2, the office's, copies everything to her address and is in its
    quiet hours (what it is sent waits)."""
    ana = {"quiet_hours": quiet_now()} if ana_quiet else {}
    await subscribe(daemon, "acc-1", ana, email=ANA)
    office = {"quiet_hours": quiet_now(), "extra_emails": [ANA_TYPED]}
    await subscribe(daemon, "acc-2", office, email=OFFICE)


async def _waiting(db: asyncpg.Connection, account: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, address) -> (state, last_error) of the account's notices but its welcome."""
    rows = await db.fetch(
        "SELECT kind, lower(recipient) AS address, state, last_error FROM notices"
        " WHERE account_id = $1 AND kind <> 'account.created'",
        account,
    )
    return {(r["kind"], r["address"]): (r["state"], r["last_error"]) for r in rows}


@pytest.mark.parametrize("how", list(WITHDRAWALS))
async def test_an_unsubscribed_address_cancels_the_offers_of_every_account_to_it(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection, how: str
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await _two_accounts_one_address(daemon, ana_quiet=True)
        for account in ("acc-1", "acc-2"):
            given = {"marketing": True, "source": "subscriber", "wording_version": "v1"}
            path = f"/v1/admin/subscribers/{account}/consent"
            assert (await call(daemon, "POST", path, json=given))[0] == 201
        # Waiting for the quiet hours: an offer to each address, and the office's missed
        # call to both of its addresses (not marketing: Ana's unsubscribe leaves it).
        await broadcast(daemon, "marketing.offer")
        await post(daemon, "call.missed", "acc-2", call_id="call-1")
        before = await _waiting(db, "acc-2")
        await withdraw(daemon, how, "acc-1", ANA)
        # Read at once: nothing was claimed meanwhile (everything waits for quiet hours).
        ana_after, office_after = await _waiting(db, "acc-1"), await _waiting(db, "acc-2")
        await move_clock_past_waits(daemon, db)
        # Two welcomes, the office's offer to its own address, its missed call to both.
        await settled(smtp_sink, 5, db)
    assert {state for state, _ in before.values()} == {"queued"}
    assert len(before) == 4
    assert ana_after == {
        ("marketing.offer", ANA): (
            "cancelled",
            f"cancelled: marketing consent withdrawn via {WITHDRAWALS[how]}",
        )
    }
    assert office_after == {
        ("marketing.offer", ANA): ("cancelled", UNSUBSCRIBED),
        ("marketing.offer", OFFICE): ("queued", None),
        ("call.missed", ANA): ("queued", None),
        ("call.missed", OFFICE): ("queued", None),
    }
    assert len(smtp_sink.envelopes) == 5
    to_ana = [r for _, r in smtp_sink.envelopes if ANA in (a.lower() for a in r)]
    assert len(to_ana) == 2  # her welcome and the office's missed call: no offer


async def test_an_undeliverable_address_cancels_every_accounts_notices_to_it_but_mandatory(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, smtp_sink, delivery={"bounce_limit": 1})
    async with running_daemon(settings) as daemon:
        await _two_accounts_one_address(daemon, ana_quiet=False)
        # The office's missed call and a maintenance notice (mandatory) wait for its quiet
        # hours; Ana's maintenance notice goes at once.
        await post(daemon, "call.missed", "acc-2", call_id="call-1")
        await broadcast(daemon, "notice.service")
        await settled_notices(db, later=timedelta(minutes=30))
        sent_before = len(smtp_sink.messages)
        # Ana's mailbox is gone: her next notice bounces, and one bounce is the limit.
        smtp_sink.rcpt_replies.append(USER_UNKNOWN)
        await post(daemon, "fax.sent", "acc-1")

        async def marked() -> bool:
            # Committed with what the mark cancels (one transaction).
            found: bool = await db.fetchval(
                "SELECT EXISTS (SELECT 1 FROM address_health"
                " WHERE address = $1 AND undeliverable_at IS NOT NULL)",
                ANA,
            )
            return found

        await eventually(marked, "Ana's address marked undeliverable")
        office = await _waiting(db, "acc-2")
    assert sent_before == 3  # two welcomes, Ana's maintenance notice
    assert office == {
        ("call.missed", ANA): ("cancelled", UNDELIVERABLE),
        ("call.missed", OFFICE): ("queued", None),
        # Mandatory: not cancelled; if it bounces too, it is rerouted as before.
        ("notice.service", ANA): ("queued", None),
        ("notice.service", OFFICE): ("queued", None),
    }
