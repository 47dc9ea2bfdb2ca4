"""Digests: what one digest email says about the notices it gathers. Pure, no I/O.

The digest job (jobs.py) gathers held notices into one digest notice per account,
address, category and period; when the worker sends it, it renders each gathered notice
as its one-line form and adds the totals computed here ("7 missed calls, 3 from
+40 721 555 123").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from notifyd.catalogue.phones import is_withheld
from notifyd.model import DigestItem

DIGEST_KIND = "digest"
# Kinds whose items name a caller, counted to show who called most.
CALLER_KINDS = ("call.missed", "voicemail.received")
TOP_CALLERS = 3


def totals(items: Sequence[DigestItem]) -> dict[str, Any]:
    """Counts per kind (in the order kinds first appear) and the callers heard from more
    than once, most frequent first: JSON-ready for the templates."""
    kinds = Counter(item.kind for item in items)
    # Callers who withheld their number are not one caller heard from several times.
    callers = Counter(
        str(item.data["caller_number"])
        for item in items
        if item.kind in CALLER_KINDS
        and item.data.get("caller_number")
        and not is_withheld(str(item.data["caller_number"]))
    )
    return {
        "count": len(items),
        "kinds": [{"kind": kind, "count": count} for kind, count in kinds.items()],
        "callers": [
            {"number": number, "count": count}
            for number, count in callers.most_common(TOP_CALLERS)
            if count > 1
        ],
    }


def in_order(items: Sequence[DigestItem]) -> list[DigestItem]:
    """The period's notices in the order their events happened."""
    return sorted(items, key=lambda item: item.occurred_at)
