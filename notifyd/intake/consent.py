"""A marketing consent choice, from the subscriber's page, the unsubscribe link, the admin
API or an import: recorded in the history and applied to the account's marketing addresses
as `rules.consent` says; a withdrawal also cancels the offers not sent yet (issue 18): the
account's own, and every other account's to the addresses it suppresses
(storage/consent.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from notifyd.rules.consent import lifts_suppression, suppresses
from notifyd.storage import consent as consent_store
from notifyd.storage import waiting
from notifyd.storage.consent import MARKETING
from notifyd.storage.db import Conn


async def decide(
    conn: Conn,
    account_id: str,
    addresses: Iterable[str],
    *,
    granted: bool,
    source: str,
    wording_version: str,
    recorded_by: str | None,
) -> dict[str, Any]:
    """Record a grant or withdrawal and apply it to the account's marketing addresses: a
    withdrawal suppresses them and cancels the account's offers not sent yet; only the
    subscriber's own grant lifts a suppression."""
    event = await consent_store.record(
        conn,
        account_id,
        granted=granted,
        source=source,
        wording_version=wording_version,
        recorded_by=recorded_by,
    )
    if suppresses(granted):
        # First, so that the account's own offers say why: its consent was withdrawn.
        # Suppressing then cancels other accounts' offers to these addresses.
        await cancel_offers(conn, account_id, source)
    for address in set(addresses):
        if suppresses(granted):
            await consent_store.suppress(conn, address, f"withdrawn via {source}")
        elif lifts_suppression(granted, source):
            await consent_store.lift(conn, address)
    return event


async def cancel_offers(conn: Conn, account_id: str, source: str) -> int:
    """Consent withdrawn: the account's marketing notices not sent yet are cancelled in the
    same transaction (SPEC §2); how many."""
    return await waiting.cancel_waiting(
        conn, account_id, [MARKETING], f"cancelled: marketing consent withdrawn via {source}"
    )
