"""What a hard bounce does, however it came: a 5xx to RCPT while sending
(delivery/outcomes.py) or a bounce report afterwards (intake/reports.py, the relay's DSN).
It counts against the address (undeliverable at [delivery] bounce_limit, and then what
else of any account waits for it is cancelled), and a mandatory notice goes to the
account's other addresses.

Neighbours: both callers (it sits below the two stages, so neither imports the other);
storage/addresses.py keeps the count; rules/routing.py no longer queues for an
undeliverable address; storage/notices.py reroutes the copies.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import structlog

from notifyd.catalogue.events import MANDATORY_CATEGORIES
from notifyd.rules.preferences import all_addresses
from notifyd.rules.routing import recipient_reasons
from notifyd.storage import addresses as address_store
from notifyd.storage import db
from notifyd.storage import notices as notice_store
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)


class Bounced(Protocol):
    """The notice that bounced, as much of it as a bounce needs (a claimed notice has it)."""

    @property
    def id(self) -> UUID: ...
    @property
    def account_id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def recipient(self) -> str: ...


async def hard_bounce(
    conn: db.Conn,
    notice: Bounced,
    reply: str,
    *,
    bounce_limit: int,
    message_domain: str,
    reported: bool = False,
) -> None:
    """A hard bounce of `notice` (already recorded failed): counted against the address
    (undeliverable at the limit); a mandatory notice goes to the account's other addresses.
    `reported`: a report after the relay's 250, which that relay's next 250 does not undo."""
    bounces, undeliverable = await address_store.record_bounce(
        conn, notice.recipient, reply, bounce_limit, reported=reported
    )
    if undeliverable:
        # record_bounce cancelled what else waits for this address, of every account.
        log.warning("address marked undeliverable", notice_id=str(notice.id), bounces=bounces)
    if notice.category in MANDATORY_CATEGORIES:
        await _reroute(conn, notice, message_domain)


async def _reroute(conn: db.Conn, notice: Bounced, message_domain: str) -> None:
    subscriber = await subscriber_store.get(conn, notice.account_id)
    if subscriber is None:
        return
    others = [
        a
        for a in all_addresses(subscriber.preferences, subscriber.email)
        if a.lower() != notice.recipient.lower()
    ]
    refused = await address_store.undeliverable_among(conn, others)
    deliverable = [a for a in others if a.lower() not in refused]
    rerouted = await notice_store.reroute(
        conn,
        notice.id,
        deliverable,
        "rerouted: another address of the account refused this notice (hard bounce)",
        message_domain,
        recipient_reasons(notice.category),
    )
    if rerouted:
        log.info("mandatory notice rerouted", notice_id=str(notice.id), copies=len(rerouted))
        await notice_store.wake_workers(conn)
    elif deliverable:
        # The account's other addresses were sent their own copies: nothing is lost.
        log.info(
            "mandatory notice: the other addresses have their copies", notice_id=str(notice.id)
        )
    else:
        log.error(
            "mandatory notice undeliverable: no other address; see the dead letters",
            notice_id=str(notice.id),
        )
