"""Only the subscriber's own consent lifts a suppression; every withdrawal suppresses."""

from __future__ import annotations

import pytest

from notifyd.rules.consent import lifts_suppression, suppresses


@pytest.mark.parametrize("source", ["admin", "import", "account.updated", "api"])
def test_consent_from_anyone_else_does_not_lift_a_suppression(source: str) -> None:
    assert not lifts_suppression(True, source)


def test_the_subscribers_own_consent_lifts_it() -> None:
    assert lifts_suppression(True, "subscriber")
    assert not lifts_suppression(False, "subscriber")


def test_every_withdrawal_suppresses() -> None:
    assert suppresses(False)
    assert not suppresses(True)
