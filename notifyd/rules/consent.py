"""Pure consent rules for marketing (SPEC §2, issue 4).

Marketing is off until consent is recorded. A withdrawal puts the address on the
suppression list, and only the subscriber's own new consent takes it off: an import, an
account.updated or an admin acting on their own never does.
"""

from __future__ import annotations

# Sources that mean "the subscriber did this themselves" (their portal, their reply).
SUBSCRIBER_SOURCES = frozenset({"subscriber"})


def lifts_suppression(granted: bool, source: str) -> bool:
    return granted and source in SUBSCRIBER_SOURCES


def suppresses(granted: bool) -> bool:
    return not granted
