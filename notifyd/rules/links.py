"""Whether a link in an email still opens (its age against [links], an admin's revocation),
and the notice that emails a fresh preference link. Pure, no I/O: the pages
(http/pages/) read the token (links.py) and the revocation (storage/links.py), and ask
here; intake/renewals.py queues the notice."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from notifyd.catalogue.events import Category
from notifyd.model import NoticePlan, Subscriber
from notifyd.settings import DefaultsSettings

# The notice that carries a fresh preference link (templates/account.preferences_link.*):
# the link itself is the one every email carries, made when it is sent.
RENEWAL_KIND = "account.preferences_link"

LinkState = Literal["open", "expired", "revoked"]


def preference_link_state(
    issued: datetime | None, revoked_at: datetime | None, now: datetime, days: int
) -> LinkState:
    """A preference link made at `issued` (None: before links carried their time, so of
    unknown age), for an account whose links made before `revoked_at` were revoked."""
    if issued is None or now - issued > timedelta(days=days):
        return "expired"
    if revoked_at is not None and issued < revoked_at:
        return "revoked"
    return "open"


def unsubscribe_link_opens(issued: datetime | None, now: datetime, days: int) -> bool:
    """An unsubscribe link opens for `days` after its email was sent. One made before links
    carried their time opens still: unsubscribing harms no one, and its age is unknown."""
    return issued is None or now - issued <= timedelta(days=days)


def renewal_plan(subscriber: Subscriber, defaults: DefaultsSettings, now: datetime) -> NoticePlan:
    """The email with a fresh preference link, to the account's own address only (whoever
    holds an old link cannot send one elsewhere). Service, not marketing: the subscriber
    asked for it a moment ago, so it goes at once, quiet hours or not."""
    return NoticePlan(
        kind=RENEWAL_KIND,
        category=Category.SERVICE,
        recipient=subscriber.email,
        language=subscriber.language or defaults.language,
        timezone=subscriber.timezone or defaults.timezone,
        due_at=now,
        reasons=(
            "category service (mandatory)",
            "asked for on the page of an expired or revoked link: sent at once, never "
            "waits for quiet hours",
        ),
    )
