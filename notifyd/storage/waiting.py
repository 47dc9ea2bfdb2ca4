"""What waits to be sent (queued, held for a digest or a burst, restricted) when a choice
of the subscriber, the state of an address or a restriction changes (issue 18): cancelled
or held at once, in the caller's transaction, with a reason the admin reads; or, when the
subscriber's language, time zone or own address changes, written in the new language and
zone or sent to the new address. The claim
checks each notice again as it takes it (notices.py's claim_due, parts.sql's withholding),
with the same words.

Neighbours: notices.py owns the queue and its SQL (notices.sql), which this module's
statements live in too; subscribers.py, consent.py, addresses.py and erasure.py call it as
they record a change, and intake/restriction.py as it restricts or lifts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from notifyd.storage.db import Conn
from notifyd.storage.notices import SQL  # the table's statements, notices.sql


async def cancel_waiting(
    conn: Conn,
    account_id: str,
    categories: Iterable[str],
    reason: str,
    addresses: Iterable[str] | None = None,
) -> int:
    """Cancel the account's notices of `categories` not sent yet (to `addresses` only, if
    given), whatever they wait for, with `reason` ("{category}" in it is the notice's);
    how many."""
    wanted = None if addresses is None else sorted({a.lower() for a in addresses})
    status: str = await conn.execute(
        SQL["cancel_waiting"], account_id, sorted(set(categories)), wanted, reason
    )
    return int(status.split()[-1])


async def follow_choices(
    conn: Conn, account_id: str, language: str | None, timezone: str | None
) -> None:
    """The account's notices not sent yet take the language and time zone just chosen
    (None: unchanged): a subscriber who switches to English during quiet hours gets the
    morning's emails in English."""
    if language is not None or timezone is not None:
        await conn.execute(SQL["follow_choices"], account_id, language, timezone)


async def readdress(conn: Conn, account_id: str, old: str, new: str) -> None:
    """The account's address changed: what waits for the old one goes to the new one (the
    old mailbox, often left because someone else reads it, gets no more of the account)."""
    await conn.execute(SQL["readdress_waiting"], account_id, old, new)


# Why the notices to an address are cancelled when the address changes state: the words of
# parts.sql's withholding, which cancels the same notices as they are claimed.
UNSUBSCRIBED = "cancelled: the address unsubscribed from marketing"
UNDELIVERABLE = "cancelled: the address is undeliverable (hard bounces)"


async def cancel_waiting_to(
    conn: Conn, addresses: Iterable[str], categories: Iterable[str], reason: str
) -> int:
    """Cancel the notices of `categories` to `addresses` not sent yet, of every account
    (an address suppressed or undeliverable is so for all that write to it), with `reason`;
    how many."""
    wanted = sorted({a.lower() for a in addresses})
    if not wanted:
        return 0
    status: str = await conn.execute(
        SQL["cancel_waiting_to"], wanted, sorted(set(categories)), reason
    )
    return int(status.split()[-1])


async def restrict_waiting(conn: Conn, account_id: str, mandatory: Iterable[str]) -> int:
    """Hold the account's waiting notices but the `mandatory` categories'; how many."""
    status: str = await conn.execute(SQL["restrict_waiting"], account_id, sorted(mandatory))
    return int(status.split()[-1])


async def release_restricted(
    conn: Conn, account_id: str, lifetimes: Mapping[str, float], default_lifetime: float
) -> tuple[int, int]:
    """Release the account's restricted notices still within their category's lifetime
    (seconds; `default_lifetime` for a category not in `lifetimes`) and cancel the others:
    (released, cancelled)."""
    row = await conn.fetchrow(
        SQL["release_restricted"],
        account_id,
        list(lifetimes),
        list(lifetimes.values()),
        default_lifetime,
    )
    assert row is not None  # an aggregate
    return int(row["released"]), int(row["cancelled"])
