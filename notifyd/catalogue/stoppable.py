"""Which notices a subscriber can stop from the email itself: a notice of a category they
may switch off carries a one-click link (RFC 8058) that turns that category off.

Neighbours: events.py names the categories and the mandatory ones; delivery/send.py puts
the link (links.Links.category_off_url) on such notices, mail/previews.py on the samples."""

from __future__ import annotations

from notifyd.catalogue.events import MANDATORY_CATEGORIES, Category

_SWITCHABLE = frozenset(Category) - MANDATORY_CATEGORIES - {Category.MARKETING}


def stoppable_by_link(category: str) -> bool:
    """Whether a notice of `category` carries a category-off link: one the subscriber may
    switch off, but marketing, whose own unsubscribe link withdraws consent instead."""
    return category in _SWITCHABLE
