"""When a link still opens (rules/links.py), and the per-client count of asks for a fresh
one (http/limits.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifyd.http.limits import ClientWindow
from notifyd.rules.links import preference_link_state, unsubscribe_link_opens

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_a_preference_link_opens_for_its_days_then_expires() -> None:
    assert preference_link_state(NOW - 30 * DAY, None, NOW, 30) == "open"
    assert preference_link_state(NOW - 30 * DAY - timedelta(seconds=1), None, NOW, 30) == (
        "expired"
    )
    # Of unknown age (made before links carried their time): expired.
    assert preference_link_state(None, None, NOW, 30) == "expired"


def test_a_revocation_closes_the_links_made_before_it_only() -> None:
    revoked = NOW - DAY
    assert preference_link_state(revoked - timedelta(milliseconds=1), revoked, NOW, 30) == (
        "revoked"
    )
    assert preference_link_state(revoked, revoked, NOW, 30) == "open"
    assert preference_link_state(revoked + DAY / 2, revoked, NOW, 30) == "open"
    # Expired says more than revoked: both offer a fresh link.
    assert preference_link_state(NOW - 40 * DAY, revoked, NOW, 30) == "expired"


def test_an_unsubscribe_link_opens_a_year_and_more() -> None:
    assert unsubscribe_link_opens(NOW - 364 * DAY, NOW, 365)
    assert unsubscribe_link_opens(NOW - 365 * DAY, NOW, 365)
    assert not unsubscribe_link_opens(NOW - 366 * DAY, NOW, 365)
    assert unsubscribe_link_opens(None, NOW, 365)  # made before links carried their time


def test_a_client_asks_its_limit_in_the_window_and_again_after() -> None:
    moment = [0.0]
    window = ClientWindow(seconds=3600, clock=lambda: moment[0])
    assert [window.allow("192.0.2.1", 2) for _ in range(3)] == [True, True, False]
    assert window.allow("192.0.2.2", 2)  # another client counts for itself
    moment[0] = 3599.0
    assert not window.allow("192.0.2.1", 2)
    moment[0] = 3600.5
    assert window.allow("192.0.2.1", 2)
