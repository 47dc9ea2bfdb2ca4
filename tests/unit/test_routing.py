"""route(): which notices an event produces, when they are due, and why."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from notifyd.catalogue.events import CATALOGUE, Category, Event, EventData, parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.model import Level, NoticePlan, QuietHours, Subscriber
from notifyd.rules.routing import Facts, Routing, route, subscriber_after
from notifyd.rules.thresholds import Crossing
from notifyd.settings import CallSettings, DefaultsSettings

DEFAULTS = DefaultsSettings(
    language="ro", timezone="Europe/Bucharest", quiet_hours=QuietHours(time(22, 0), time(8, 0))
)
DAYTIME = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # 12:00 in Bucharest
NIGHT = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 01:00 in Bucharest
NIGHT_ENDS = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 08:00 in Bucharest

ANA = Subscriber(
    account_id="acc-1001",
    email="ana@example.com",
    name="Ana Popescu",
    username="ana.popescu",
    language=None,
    timezone=None,
)


def event(event_type: str, now: datetime = DAYTIME, **overrides: Any) -> Event:
    raw = sample_event(event_type, account_id="acc-1001", now=now, **overrides)
    return parse_event(json.dumps(raw).encode())


class PasswordChanged(EventData):
    """A security event, as the catalogue will have: never waits for quiet hours."""

    type_name: ClassVar[str] = "account.password_changed"
    category: ClassVar[Category | None] = Category.SECURITY


class ProfileUpdated(EventData):
    """An event that only updates the subscriber and sends nothing."""

    type_name: ClassVar[str] = "account.updated"
    category: ClassVar[Category | None] = None


def only_plan(event_: Event, subscriber: Subscriber | None, now: datetime) -> NoticePlan:
    routing = route(event_, subscriber, Facts(), DEFAULTS, CallSettings(), now)
    assert routing.skipped is None
    assert len(routing.notices) == 1
    return routing.notices[0]


# -- nothing to send ---------------------------------------------------------------------------


def test_no_subscriber_means_no_notice_and_a_skipped_reason() -> None:
    routing = route(event("call.missed"), None, Facts(), DEFAULTS, CallSettings(), DAYTIME)

    assert routing.notices == ()
    assert routing.skipped
    assert routing.skipped.reason == "unknown account: no account.created received for it"


def test_closed_account_gets_no_missed_call_notice() -> None:
    closed = Subscriber("acc-1001", "ana@example.com", closed_at=DAYTIME)

    routing = route(event("call.missed"), closed, Facts(), DEFAULTS, CallSettings(), DAYTIME)

    assert routing.notices == ()
    assert routing.skipped
    assert routing.skipped.reason == "account closed: only mandatory notices are sent"


def test_event_without_category_only_updates_the_subscriber() -> None:
    updated = Event("account.updated", DAYTIME, ProfileUpdated(account_id="acc-1001"))

    routing = route(updated, ANA, Facts(), DEFAULTS, CallSettings(), DAYTIME)

    assert routing.notices == ()
    assert routing.skipped
    assert routing.skipped.reason == "event updates the subscriber only"


# -- when notices are due ----------------------------------------------------------------------


def test_welcome_notice_goes_out_at_once_even_inside_quiet_hours() -> None:
    plan = only_plan(event("account.created", NIGHT), ANA, NIGHT)

    assert plan.kind == "account.created"
    assert plan.category is Category.SERVICE
    assert plan.due_at == NIGHT
    assert plan.reasons == (
        "category service (mandatory)",
        "sent at once: never waits for quiet hours",
    )


def test_missed_call_inside_quiet_hours_is_held_until_they_end() -> None:
    plan = only_plan(event("call.missed", NIGHT), ANA, NIGHT)

    assert plan.kind == "call.missed"
    assert plan.category is Category.CALLS
    assert plan.due_at == NIGHT_ENDS
    assert plan.reasons == (
        "category calls",
        "quiet hours 22:00-08:00 in Europe/Bucharest: held until they end",
    )


def test_missed_call_outside_quiet_hours_goes_now() -> None:
    plan = only_plan(event("call.missed"), ANA, DAYTIME)

    assert plan.due_at == DAYTIME
    assert plan.reasons == (
        "category calls",
        "outside quiet hours: sent at once",
    )


def test_missed_call_goes_now_when_quiet_hours_are_disabled() -> None:
    no_quiet = DefaultsSettings(quiet_hours=None)

    routing = route(event("call.missed", NIGHT), ANA, Facts(), no_quiet, CallSettings(), NIGHT)

    assert routing.notices[0].due_at == NIGHT


def test_security_notice_ignores_quiet_hours() -> None:
    security = Event("account.password_changed", NIGHT, PasswordChanged(account_id="acc-1001"))

    plan = only_plan(security, ANA, NIGHT)

    assert plan.category is Category.SECURITY
    assert plan.due_at == NIGHT
    assert plan.reasons == (
        "category security (mandatory)",
        "sent at once: never waits for quiet hours",
    )


def test_mandatory_notice_still_goes_to_a_closed_account() -> None:
    closed = Subscriber("acc-1001", "ana@example.com", closed_at=DAYTIME)
    security = Event("account.password_changed", DAYTIME, PasswordChanged(account_id="acc-1001"))

    plan = only_plan(security, closed, DAYTIME)

    assert plan.recipient == "ana@example.com"


# -- language, zone and recipient --------------------------------------------------------------


def test_defaults_are_used_when_the_subscriber_chose_nothing() -> None:
    plan = only_plan(event("call.missed"), ANA, DAYTIME)

    assert plan.recipient == "ana@example.com"
    assert plan.language == "ro"
    assert plan.timezone == "Europe/Bucharest"


def test_subscriber_language_and_timezone_override_the_defaults() -> None:
    # 12:00 UTC is 14:00 in Bucharest (outside) but 07:00 in New York (inside).
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    subscriber = Subscriber(
        "acc-1001", "ana@example.com", language="en", timezone="America/New_York"
    )

    plan = only_plan(event("call.missed", now), subscriber, now)

    assert plan.language == "en"
    assert plan.timezone == "America/New_York"
    assert plan.due_at == datetime(2026, 11, 22, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert plan.reasons[-1] == "quiet hours 22:00-08:00 in America/New_York: held until they end"


# -- subscriber_after --------------------------------------------------------------------------


def test_account_created_builds_the_subscriber() -> None:
    subscriber = subscriber_after(event("account.created"), None)

    assert subscriber == Subscriber(
        account_id="acc-1001",
        email="subscriber@example.com",
        name="Ana Popescu",
        username="ana.popescu",
        language="ro",
        timezone="Europe/Bucharest",
    )


def test_account_created_again_keeps_choices_it_does_not_repeat() -> None:
    current = Subscriber(
        "acc-1001",
        "old@example.com",
        name="Ana P.",
        username="ana",
        language="en",
        timezone="Europe/London",
    )
    again = event(
        "account.created", email="new@example.com", name=None, language=None, timezone=None
    )

    subscriber = subscriber_after(again, current)

    assert subscriber == Subscriber(
        account_id="acc-1001",
        email="new@example.com",
        name="Ana P.",
        username="ana.popescu",
        language="en",
        timezone="Europe/London",
    )


def test_other_events_leave_the_subscriber_unchanged() -> None:
    assert subscriber_after(event("call.missed"), ANA) is ANA
    assert subscriber_after(event("call.missed"), None) is None


def test_routing_the_welcome_uses_the_subscriber_it_creates() -> None:
    created = event("account.created", language="en", timezone="Europe/London")

    subscriber = subscriber_after(created, None)
    plan = only_plan(created, subscriber, DAYTIME)

    assert plan.recipient == "subscriber@example.com"
    assert plan.language == "en"
    assert plan.timezone == "Europe/London"


# -- the whole catalogue -----------------------------------------------------------------------


def decide(event_: Event, facts: Facts, now: datetime = DAYTIME) -> Routing:
    return route(event_, ANA, facts, DEFAULTS, CallSettings(voicemail_wait_seconds=90), now)


def test_a_changed_email_address_is_told_to_the_old_and_the_new_address() -> None:
    updated = event("account.updated", email="ana.new@example.com")
    after = subscriber_after(updated, ANA)
    assert after is not None

    routing = route(
        updated,
        after,
        Facts(previous_email="ana@example.com"),
        DEFAULTS,
        CallSettings(),
        NIGHT,
    )

    assert [(n.recipient, n.context["recipient_role"]) for n in routing.notices] == [
        ("ana@example.com", "old"),
        ("ana.new@example.com", "new"),
    ]
    assert all(n.kind == "account.email_changed" for n in routing.notices)
    assert all(n.category is Category.SECURITY and n.due_at == NIGHT for n in routing.notices)


def test_an_update_without_a_new_address_sends_nothing() -> None:
    routing = decide(event("account.updated", name="Ana Maria"), Facts())

    assert routing.notices == ()
    assert routing.skipped
    assert routing.skipped.reason == "event updates the subscriber only"


def test_legs_of_one_call_share_a_dedupe_key() -> None:
    first = decide(event("call.missed", call_id="1700.1", extension="101"), Facts())
    second = decide(event("call.missed", call_id="1700.1", extension="102"), Facts())

    assert first.notices[0].dedupe_key == second.notices[0].dedupe_key == "call:1700.1"


def test_a_missed_call_to_voicemail_waits_for_the_voicemail() -> None:
    plan = decide(event("call.missed", to_voicemail=True), Facts()).notices[0]

    assert plan.due_at == DAYTIME + timedelta(seconds=90)


def test_a_missed_call_whose_voicemail_was_already_notified_sends_nothing() -> None:
    routing = decide(event("call.missed"), Facts(voicemail_exists=True))

    assert routing.notices == ()
    assert routing.skipped is not None


def test_a_voicemail_tells_the_missed_call_it_absorbed() -> None:
    call = {"started_at": "2026-11-22T09:59:00+00:00", "called_number": "+40215550100"}
    plan = decide(event("voicemail.received", call_id="1700.1"), Facts(merged_call=call))
    alone = decide(event("voicemail.received", call_id="1700.2"), Facts()).notices[0]

    assert plan.notices[0].context["missed_call"] == call
    assert plan.notices[0].dedupe_key == "voicemail:1700.1"
    assert alone.context["missed_call"] is None


def test_credit_crossings_choose_the_kind_and_critical_never_waits() -> None:
    low = Crossing(Level.LOW, Level.LOW, Decimal("5"))
    critical = Crossing(Level.CRITICAL, Level.CRITICAL, Decimal("1"))
    balance = event("billing.balance_updated", NIGHT)

    low_plan = decide(balance, Facts(credit=low, credit_days_left=3), NIGHT).notices[0]
    critical_plan = decide(balance, Facts(credit=critical), NIGHT).notices[0]
    nothing = decide(balance, Facts(credit=Crossing(Level.LOW, None, None)), NIGHT)

    assert (low_plan.kind, low_plan.due_at) == ("credit.low", NIGHT_ENDS)
    assert low_plan.context == {"threshold": "5", "days_left": 3}
    assert (critical_plan.kind, critical_plan.due_at) == ("credit.critical", NIGHT)
    assert nothing.notices == ()
    assert nothing.skipped
    assert nothing.skipped.reason == "no low-credit threshold crossed"


def test_allowlist_changes_are_listed_as_added_and_removed() -> None:
    changed = event(
        "account.ip_allowlist_changed",
        previous=["203.0.113.10", "192.0.2.0/24"],
        current=["203.0.113.10/32", "198.51.100.0/24"],
    )

    plan = decide(changed, Facts()).notices[0]

    assert plan.context == {"added": ["198.51.100.0/24"], "removed": ["192.0.2.0/24"]}


def test_a_closed_account_gets_its_closing_notice_but_no_billing_notices() -> None:
    closed = replace(ANA, closed_at=DAYTIME)

    closing = route(event("account.closed"), closed, Facts(), DEFAULTS, CallSettings(), NIGHT)
    payment = route(
        event("billing.payment_confirmed"), closed, Facts(), DEFAULTS, CallSettings(), DAYTIME
    )

    assert closing.notices[0].kind == "account.closed"
    assert closing.notices[0].due_at == NIGHT
    assert payment.notices == ()


@pytest.mark.parametrize(
    "kind",
    [
        "account.password_changed",
        "account.password_reset_requested",
        "account.pin_created",
        "account.ip_allowlist_changed",
        "usage.daily_limit_exceeded",
    ],
)
def test_every_security_event_is_mandatory_and_immediate(kind: str) -> None:
    plan = decide(event(kind, NIGHT), Facts(), NIGHT).notices[0]

    assert plan.category is Category.SECURITY
    assert plan.due_at == NIGHT


# -- restriction -------------------------------------------------------------------------------


def test_a_restricted_accounts_notices_are_planned_held_but_mandatory_ones() -> None:
    """The wave stores what routing marks 'restricted' (waves.sql's queue): planned as
    usual, to be released as planned when the restriction is lifted."""
    restricted = replace(ANA, restricted_at=DAYTIME)
    call = event("call.missed", now=NIGHT)
    held = only_plan(call, restricted, NIGHT)
    told = only_plan(event("account.password_changed", now=NIGHT), restricted, NIGHT)
    free = only_plan(call, ANA, NIGHT)
    assert held.restricted
    assert replace(held, restricted=False) == free
    assert not told.restricted


def test_no_event_of_the_catalogue_is_marketing() -> None:
    """Which is why a wave of webhooks checks neither consent nor suppressions as it queues
    (waves.sql's queue): offers come from broadcasts only, and the claim checks those."""
    categories = {data.category for data in CATALOGUE.values()}
    assert Category.MARKETING not in categories
