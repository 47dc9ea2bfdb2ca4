"""Bounce and complaint reports in: each one mapped to the notice it is about and acted on.
A hard bounce does what a 5xx to RCPT does (delivery/bounces.py: counted, undeliverable at
the limit) and fails the notice with the report's words; a soft bounce is counted only; a
complaint suppresses marketing for the address and records the withdrawal of consent, as
an unsubscribe does (consent.py). A report that names no notice of ours changes nothing,
and its `Decision` says why.

The notice is found by the token of the bounce address the report came to (VERP: its
envelope recipient, or the original message's envelope sender the report quotes), or,
when the report came to no bounce address, by the original Message-ID. A token that no
key made (forged, or mangled on the way) is not followed by a Message-ID: nothing is done.

Neighbours: mail/reports.py reads DSN and ARF messages into a `Report` (a sending
service's JSON webhook would make the same `Report` and call `apply`); http/reports.py
is the `mta` source's route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import structlog

from notifyd.bounces import hard_bounce
from notifyd.intake import consent
from notifyd.links import Links
from notifyd.mail.reports import Kind, Report
from notifyd.storage import addresses as address_store
from notifyd.storage import audit as audit_store
from notifyd.storage import consent as consent_store
from notifyd.storage import db
from notifyd.storage import notices as notice_store

log = structlog.get_logger(__name__)

# Message-IDs of notices are <notice id@message domain> (storage/notices.py).
_NOTICE_MESSAGE_ID = re.compile(r"<([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@")


@dataclass(frozen=True)
class Terms:
    """What applying a report needs besides the report: the link keys (they make the
    bounce tokens), the bounce address's local part, [delivery] bounce_limit, and the
    domain of the Message-IDs of copies a reroute makes."""

    links: Links
    bounce_local_part: str
    bounce_limit: int
    message_domain: str


@dataclass(frozen=True)
class Decision:
    """What was done: `action` is hard_bounce, soft_bounce, complaint or nothing; `reason`
    a word saying why (for nothing: why not); no personal data in either."""

    action: str
    reason: str
    notice_id: UUID | None = None


async def apply(pool: asyncpg.Pool, report: Report, terms: Terms) -> Decision:
    """Act on one report in one transaction; what was done. Raises what the database
    raises (`db.UNAVAILABLE`: nothing was done; the sender posts it again)."""
    if report.kind is None:
        return _logged(Decision("nothing", "not_a_bounce_or_complaint"))
    found, by_token = _notice_of(report, terms)
    if not isinstance(found, UUID):
        return _logged(Decision("nothing", found))
    async with pool.acquire() as conn, conn.transaction():
        notice = await notice_store.reported(conn, found)
        # Found by its Message-ID alone: it must be that notice's whole Message-ID.
        if notice is None or not (
            by_token or str(report.message_id).lower() == str(notice["message_id"]).lower()
        ):
            return _logged(Decision("nothing", "no_such_notice"))
        decision = await _act(conn, notice, report, terms)
    return _logged(decision)


async def _act(conn: db.Conn, notice: asyncpg.Record, report: Report, terms: Terms) -> Decision:
    notice_id: UUID = notice["id"]
    recipient: str = notice["recipient"]
    if report.kind is Kind.FAILED:
        if not await notice_store.mark_bounced(conn, notice_id, report.reply):
            # Reported already (a report posted twice), or failed when it was sent.
            return Decision("nothing", f"notice_{notice['state']}", notice_id)
        await hard_bounce(
            conn,
            _Notice(notice_id, notice["account_id"], notice["category"], recipient),
            report.reply,
            bounce_limit=terms.bounce_limit,
            message_domain=terms.message_domain,
            reported=True,
        )
        return Decision("hard_bounce", report.status or "failed", notice_id)
    if report.kind is Kind.DELAYED:
        status = report.status or "delayed"
        if await address_store.record_soft_bounce(conn, recipient, notice_id, status) is None:
            # The same report posted again (a pipe script retrying after a timeout).
            return Decision("nothing", "reported_already", notice_id)
        return Decision("soft_bounce", status, notice_id)
    if await consent_store.is_suppressed(conn, recipient):
        return Decision("nothing", "already_suppressed", notice_id)
    account_id: str = notice["account_id"]
    await consent.decide(
        conn,
        account_id,
        [recipient],
        granted=False,
        source="complaint",
        wording_version=f"arf-{report.feedback_type or 'abuse'}",
        recorded_by=None,
    )
    await audit_store.record(
        conn,
        audit_store.MAIL_REPORT,
        audit_store.consent_action(granted=False),
        account_id,
        {"via": "complaint", "notice_id": str(notice_id)},
    )
    return Decision("complaint", report.feedback_type or "abuse", notice_id)


@dataclass(frozen=True)
class _Notice:
    id: UUID
    account_id: str
    category: str
    recipient: str


def _notice_of(report: Report, terms: Terms) -> tuple[UUID | str, bool]:
    """The id of the notice the report is about (or why there is none), and whether a
    bounce token named it."""
    for address in (report.bounce_address, report.quoted_bounce_address):
        token = bounce_token(address, terms.bounce_local_part)
        if token is not None:
            notice_id = terms.links.bounced_notice(token)
            return (notice_id if notice_id is not None else "forged_token"), True
    found = _NOTICE_MESSAGE_ID.match((report.message_id or "").lower())
    return (UUID(found.group(1)) if found else "no_notice_named"), False


def bounce_token(address: str | None, local_part: str) -> str | None:
    """The token of a bounce address `<local_part>+<token>@<domain>`, or None for any
    other address (the domain is not checked: bounce addresses of a domain used before
    still map their reports)."""
    if not address:
        return None
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    prefix = f"{local_part}+"
    return local[len(prefix) :] if local.startswith(prefix) else None


def _logged(decision: Decision) -> Decision:
    log.info(
        "bounce report",
        action=decision.action,
        reason=decision.reason,
        notice_id=str(decision.notice_id) if decision.notice_id else None,
    )
    return decision
