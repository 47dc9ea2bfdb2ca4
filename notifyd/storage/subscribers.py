"""Subscribers (table `subscribers`): their details, preferences and restriction of
processing. Neighbours: notices.py, whose waiting notices a category switched off cancels;
erasure.py, which every save asks whether an address it gives the account was erased
before (then it goes back on the suppression list): every path that brings an address in
(webhooks, imports, the admin API, the preference page) saves through here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from notifyd.model import Preferences, Subscriber
from notifyd.storage import erasure, links, queries, waiting
from notifyd.storage.db import Conn

SQL = queries.load("subscribers")


def subscriber_of(row: asyncpg.Record | Mapping[str, Any]) -> Subscriber:
    """The subscriber of a row of its columns."""
    fields = dict(row)
    fields["preferences"] = Preferences.from_json(fields.get("preferences"))
    return Subscriber(**fields)


async def get(conn: Conn, account_id: str, *, lock: bool = False) -> Subscriber | None:
    row = await conn.fetchrow(SQL["lock_subscriber" if lock else "get_subscriber"], account_id)
    return None if row is None else subscriber_of(row)


async def upsert(
    conn: Conn, subscriber: Subscriber, *, before: Subscriber | None, erasure_key: bytes
) -> Subscriber:
    """Create the subscriber or update it (details left None keep their value; reopens it).
    `before`: the subscriber as stored (None: unknown, every address is checked), and the
    key of erased addresses' hashes, as for every save here."""
    saved = await _save_details(conn, "upsert_subscriber", subscriber)
    return await _after_save(conn, before, saved, erasure_key)


async def replace(
    conn: Conn, subscriber: Subscriber, *, before: Subscriber | None, erasure_key: bytes
) -> Subscriber:
    """Create the subscriber or set its details to these (None clears one)."""
    saved = await _save_details(conn, "replace_subscriber", subscriber)
    return await _after_save(conn, before, saved, erasure_key)


async def _save_details(conn: Conn, query: str, subscriber: Subscriber) -> Subscriber:
    row = await conn.fetchrow(
        SQL[query],
        subscriber.account_id,
        subscriber.email,
        subscriber.name,
        subscriber.username,
        subscriber.language,
        subscriber.timezone,
    )
    assert row is not None
    return subscriber_of(row)


async def update(
    conn: Conn, subscriber: Subscriber, *, before: Subscriber | None, erasure_key: bytes
) -> Subscriber:
    row = await conn.fetchrow(
        SQL["update_subscriber"],
        subscriber.account_id,
        subscriber.email,
        subscriber.name,
        subscriber.language,
        subscriber.timezone,
        subscriber.closed_at,
    )
    assert row is not None
    return await _after_save(conn, before, subscriber_of(row), erasure_key)


async def save_preferences(
    conn: Conn, subscriber: Subscriber, *, before: Subscriber | None, erasure_key: bytes
) -> Subscriber:
    """Store the choices; every notice of a category now off that is not sent yet is
    cancelled with them (SPEC §2: whatever it waits for)."""
    off = [category for category, mode in subscriber.preferences.modes.items() if mode == "off"]
    if off:
        await waiting.cancel_waiting(
            conn,
            subscriber.account_id,
            off,
            "cancelled: the subscriber turned {category} notices off",
        )
    row = await conn.fetchrow(
        SQL["save_preferences"],
        subscriber.account_id,
        subscriber.preferences.to_json(),
        subscriber.voicemail_audio,
        subscriber.low_credit_threshold,
        subscriber.language,
        subscriber.timezone,
    )
    assert row is not None
    return await _after_save(conn, before, subscriber_of(row), erasure_key)


def addresses_of(subscriber: Subscriber) -> frozenset[str]:
    """Every address the subscriber has (lower case): its own, the extra ones and those its
    preferences give categories."""
    chosen = subscriber.preferences
    named = [a for addresses in chosen.addresses.values() for a in addresses]
    return frozenset(a.lower() for a in (subscriber.email, *chosen.extra_emails, *named))


async def _after_save(
    conn: Conn, before: Subscriber | None, saved: Subscriber, erasure_key: bytes
) -> Subscriber:
    """What every save does beyond the row: the notices waiting take a new language or time
    zone, a new address revokes the preference links sent to the old one, and an erased
    address given again is suppressed again."""
    if before is not None:
        await waiting.follow_choices(
            conn,
            saved.account_id,
            _new(before.language, saved.language),
            _new(before.timezone, saved.timezone),
        )
        if before.email.lower() != saved.email.lower():
            # The old mailbox keeps no control of the account: people change the address
            # because someone else reads the old one. Its preference links stop opening
            # (their page offers a fresh link, emailed to the new address), and what
            # waits for it goes to the new one.
            await links.revoke(conn, saved.account_id, datetime.now(UTC))
            await waiting.readdress(conn, saved.account_id, before.email, saved.email)
    return await _given_again(conn, before, saved, erasure_key)


def _new(was: str | None, now: str | None) -> str | None:
    # None when unchanged, or cleared to follow the default (not known here): those notices
    # keep the value they were routed with.
    return now if now is not None and now != was else None


async def _given_again(
    conn: Conn, before: Subscriber | None, saved: Subscriber, erasure_key: bytes
) -> Subscriber:
    """The addresses this save gave the account (those it did not have `before`) that were
    erased go back on the suppression list (SPEC §2: an erased address is never re-added to
    marketing). Only new ones: an address the account kept was checked when it came, and
    the subscriber's own consent may have lifted its suppression since. No statement when
    the save brought no address."""
    new = addresses_of(saved) - (addresses_of(before) if before is not None else frozenset())
    if new:
        await erasure.resuppress(conn, erasure_key, new)
    return saved


async def set_restriction(conn: Conn, account_id: str, restricted: bool) -> datetime | None:
    """Restrict the account's processing or lift it: since when it is restricted now (None
    when lifted). KeyError when there is no such subscriber."""
    rows = await conn.fetch(SQL["set_restriction"], account_id, restricted)
    if not rows:
        raise KeyError(account_id)
    since: datetime | None = rows[0]["restricted_at"]
    return since
