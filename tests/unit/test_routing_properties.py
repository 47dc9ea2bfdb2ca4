"""Properties of route() over generated events, subscribers, preferences and facts: what
must hold whatever the subscriber chose and whenever the event came. The example tests in
test_routing.py show each rule once; these look for the combination that breaks one.

A few hundred cases each in `make test`; NOTIFYD_NIGHTLY=1 runs 20,000.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifyd.catalogue.events import CATALOGUE, MANDATORY_CATEGORIES, Category, Event, parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.model import Level, Preferences, QuietHours, RecentEmails, Subscriber
from notifyd.rules.preferences import CONFIGURABLE, all_addresses
from notifyd.rules.routing import Facts, Routing, route
from notifyd.rules.thresholds import Crossing
from notifyd.settings import CallSettings, DefaultsSettings, DeliverySettings

EXAMPLES = 20_000 if os.environ.get("NOTIFYD_NIGHTLY") == "1" else 200
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

ZONES = ("Europe/Bucharest", "UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe")
ADDRESSES = ("ana@example.com", "office@example.com", "fax@example.ro", "ANA@example.com")
# Events that queue something given the right facts (account.updated: an address change).
EVENT_TYPES = tuple(CATALOGUE)
LIFETIMES = DeliverySettings().lifetimes
# A digest goes out at the end of its period, later if that falls in quiet hours; a period
# is at most a day, and a day in a zone changing its clocks is 25 hours. A burst's follow-up
# goes at the end of its window, later if that falls in quiet hours.
LONGEST_WAIT = {
    "hourly": timedelta(hours=25),
    "daily": timedelta(hours=49),
    "burst": timedelta(hours=25, seconds=CallSettings().burst_window_seconds),
}

times_of_day = st.builds(time, st.integers(0, 23), st.integers(0, 59))
quiet_hours_text = st.one_of(
    st.none(),  # the default
    st.just(""),  # none
    st.tuples(times_of_day, times_of_day)
    .filter(lambda pair: pair[0] != pair[1])
    .map(lambda pair: f"{pair[0]:%H:%M}-{pair[1]:%H:%M}"),
)
preferences = st.builds(
    Preferences,
    modes=st.dictionaries(
        st.sampled_from(CONFIGURABLE), st.sampled_from(("immediate", "hourly", "daily", "off"))
    ),
    quiet_hours=quiet_hours_text,
    addresses=st.dictionaries(
        st.sampled_from([c.value for c in Category]),
        st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=2).map(tuple),
    ),
    extra_emails=st.lists(st.sampled_from(ADDRESSES), max_size=2).map(tuple),
    digest_time=st.one_of(st.none(), times_of_day.map(lambda t: f"{t:%H:%M}")),
)
subscribers = st.builds(
    Subscriber,
    account_id=st.just("acc-1001"),
    email=st.sampled_from(ADDRESSES),
    language=st.sampled_from((None, "ro", "en")),
    timezone=st.sampled_from((None, *ZONES)),
    closed_at=st.one_of(st.none(), st.just(datetime(2026, 1, 1, tzinfo=UTC))),
    preferences=preferences,
)
moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
defaults = st.builds(
    DefaultsSettings,
    timezone=st.sampled_from(ZONES),
    quiet_hours=st.one_of(
        st.none(),
        st.tuples(times_of_day, times_of_day)
        .filter(lambda pair: pair[0] != pair[1])
        .map(lambda pair: QuietHours(*pair)),
    ),
    modes=st.dictionaries(
        st.sampled_from(CONFIGURABLE), st.sampled_from(("immediate", "hourly", "daily", "off"))
    ),
)
recent = st.dictionaries(
    st.sampled_from([a.lower() for a in ADDRESSES]),
    st.builds(
        RecentEmails,
        last_hour=st.integers(0, 40),
        last_at=st.one_of(st.none(), st.just(datetime(2026, 1, 1, tzinfo=UTC))),
    ),
)


# One parsed event per type: route() reads the event's data, not when it was stamped, and
# parsing each case's own made the properties four times slower.
EVENTS = {
    event_type: parse_event(
        json.dumps(sample_event(event_type, now=datetime(2026, 6, 1, tzinfo=UTC))).encode()
    )
    for event_type in EVENT_TYPES
}


@st.composite
def cases(draw: st.DrawFn) -> tuple[Event, Subscriber, Facts, DefaultsSettings, datetime, int]:
    now = draw(moments)
    event = EVENTS[draw(st.sampled_from(EVENT_TYPES))]
    subscriber = draw(subscribers)
    facts = Facts(
        previous_email=draw(st.one_of(st.none(), st.just("old@example.com"))),
        voicemail_exists=draw(st.booleans()),
        credit=draw(
            st.one_of(
                st.none(),
                st.sampled_from(
                    (
                        Crossing(Level.LOW, Level.LOW, Decimal("5")),
                        Crossing(Level.CRITICAL, Level.CRITICAL, Decimal("1")),
                        Crossing(Level.OK, None, None),
                    )
                ),
            )
        ),
        recent=draw(recent),
        undeliverable=frozenset(draw(st.sets(st.sampled_from([a.lower() for a in ADDRESSES])))),
    )
    return event, subscriber, facts, draw(defaults), now, draw(st.integers(0, 30))


def routed(case: tuple[Event, Subscriber, Facts, DefaultsSettings, datetime, int]) -> Routing:
    event, subscriber, facts, defaults_, now, cap = case
    return route(event, subscriber, facts, defaults_, CallSettings(), now, hourly_cap=cap)


def category_of(case: tuple[Any, ...], routing: Routing) -> Category | None:
    event: Event = case[0]
    if routing.notices:
        return routing.notices[0].category
    return event.data.category


@PROPERTY
@given(cases())
def test_a_mandatory_notice_is_never_dropped(case: tuple[Any, ...]) -> None:
    """Whatever the subscriber turned off, redirected or let bounce, and however many emails
    went out this hour: a security or service event that has something to say says it."""
    routing = routed(case)
    event, facts = case[0], case[2]
    if event.type == "account.updated" and facts.previous_email is None:
        return  # a profile update says nothing
    if event.type == "billing.balance_updated":
        return  # low credit is not mandatory
    if event.data.category in MANDATORY_CATEGORIES or event.type == "account.updated":
        assert routing.notices, routing.skipped
        assert routing.skipped is None


@PROPERTY
@given(cases())
def test_quiet_hours_and_digests_never_hold_a_security_notice(case: tuple[Any, ...]) -> None:
    routing = routed(case)
    now = case[4]
    for notice in routing.notices:
        if notice.category is Category.SECURITY:
            assert notice.due_at == now, notice.reasons
            assert notice.digest is None, notice.reasons


@PROPERTY
@given(cases())
def test_every_notice_is_due_within_its_lifetime(case: tuple[Any, ...]) -> None:
    """Nothing is queued to go out before its event, nor so late that it would expire
    (`[delivery] lifetimes`) before its first attempt; a held one within its digest period."""
    routing = routed(case)
    now = case[4]
    for notice in routing.notices:
        assert notice.due_at >= now
        wait = notice.due_at - now
        if notice.digest is None:
            lifetime = timedelta(seconds=LIFETIMES[notice.category.value])
            assert wait < lifetime, (notice.kind, wait, notice.reasons)
        else:
            assert wait <= LONGEST_WAIT[notice.digest], (notice.kind, wait, notice.reasons)


@PROPERTY
@given(cases())
def test_notices_go_only_to_the_accounts_own_addresses(case: tuple[Any, ...]) -> None:
    """Every recipient is an address of the account (or, for an address change, the address
    it had); a notice that may be dropped never goes to an undeliverable address."""
    routing = routed(case)
    subscriber, facts = case[1], case[2]
    own = {a.lower() for a in all_addresses(subscriber.preferences, subscriber.email)}
    if facts.previous_email:
        own.add(facts.previous_email.lower())
    for notice in routing.notices:
        assert notice.recipient.lower() in own
        if notice.category not in MANDATORY_CATEGORIES:
            assert notice.recipient.lower() not in facts.undeliverable
    recipients = [n.recipient.lower() for n in routing.notices]
    assert len(recipients) == len(set(recipients)), "one notice per address"


@PROPERTY
@given(cases())
def test_every_outcome_says_why(case: tuple[Any, ...]) -> None:
    """Either notices, each with its reasons (the first names the category), or none and a
    skip with a code and a sentence: the admin API shows it as is."""
    routing = routed(case)
    if routing.notices:
        assert routing.skipped is None
        for notice in routing.notices:
            assert notice.reasons
            assert notice.reasons[0].startswith(f"category {notice.category.value}")
            assert all(reason.strip() for reason in notice.reasons)
    else:
        assert routing.skipped is not None
        assert routing.skipped.code
        assert routing.skipped.reason


@PROPERTY
@given(cases())
def test_a_held_notice_is_released_outside_quiet_hours(case: tuple[Any, ...]) -> None:
    """A notice that is not security or immediate and that waited goes out when the
    subscriber's quiet hours are over, in their zone."""
    routing = routed(case)
    subscriber, defaults_, now = case[1], case[3], case[4]
    quiet_text = subscriber.preferences.quiet_hours
    if quiet_text is None:
        quiet = defaults_.quiet_hours
    elif quiet_text == "":
        quiet = None
    else:
        start, end = (time.fromisoformat(part) for part in quiet_text.split("-"))
        quiet = QuietHours(start, end)
    if quiet is None:
        return
    zone = ZoneInfo(subscriber.timezone or defaults_.timezone)
    for notice in routing.notices:
        if notice.due_at == now or notice.category is Category.SECURITY:
            continue
        local = notice.due_at.astimezone(zone).time().replace(second=0, microsecond=0)
        inside = (
            quiet.start <= local < quiet.end
            if quiet.start < quiet.end
            else local >= quiet.start or local < quiet.end
        )
        assert not inside, (notice.kind, notice.due_at.astimezone(zone), str(quiet))
