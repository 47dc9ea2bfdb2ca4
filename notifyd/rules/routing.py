"""Pure routing: (event, subscriber, facts, config, now) -> the notices to queue, with reasons.

Intake looks up the few facts a decision needs (the previous email address, a queued
missed call of the same call, the low-credit crossing) and this module decides. The
reasons are stored on each notice, so "why did I get this email, and why then?" has an
answer later. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from notifyd.catalogue.events import (
    MANDATORY_CATEGORIES,
    AccountClosed,
    AccountCreated,
    AccountUpdated,
    BalanceUpdated,
    CallMissed,
    Category,
    Event,
    EventData,
    IpAllowlistChanged,
    VoicemailReceived,
)
from notifyd.model import Level, NoticePlan, Preferences, RecentEmails, Skip, Subscriber
from notifyd.rules.preferences import (
    addresses_for,
    all_addresses,
    mode_for,
)
from notifyd.rules.thresholds import Crossing
from notifyd.rules.timing import IMMEDIATE_KINDS, gather_storm, when_due
from notifyd.settings import CallSettings, DefaultsSettings


@dataclass(frozen=True)
class Facts:
    """What intake looked up in the database for this event."""

    # account.updated: the address before this update, when the update changed it.
    previous_email: str | None = None
    # voicemail.received: the still-queued missed-call notice of the same call, folded in.
    merged_call: Mapping[str, Any] | None = None
    # call.missed: a voicemail notice for the same call exists (it already says "missed").
    voicemail_exists: bool = False
    # billing.balance_updated: the threshold crossing, if a threshold is configured.
    credit: Crossing | None = None
    # billing.balance_updated without a crossing: why there is none (a Skip), if not for
    # the balance itself (no thresholds for its currency, an older balance arriving late).
    credit_skip: Skip | None = None
    credit_days_left: int | None = None
    # Emails of this event's category per address lately (bursts and the hourly cap).
    recent: Mapping[str, RecentEmails] = field(default_factory=dict)
    # The account's addresses marked undeliverable after hard bounces (lower case).
    undeliverable: frozenset[str] = frozenset()


UNKNOWN_ACCOUNT = Skip("unknown_account", "unknown account: no account.created received for it")
UPDATES_ONLY = Skip("updates_subscriber_only", "event updates the subscriber only")
NO_CROSSING = Skip("no_threshold_crossed", "no low-credit threshold crossed")
OLDER_BALANCE = Skip(
    "older_balance", "a newer balance was received before this one: it says nothing about now"
)
ACCOUNT_CLOSED = Skip("account_closed", "account closed: only mandatory notices are sent")
VOICEMAIL_HAS_IT = Skip(
    "voicemail_notified", "one email per call: the voicemail of this call already has its own"
)
LATER_LEG = Skip("later_leg", "one notice per call: an earlier leg of this call already has it")
VOICEMAIL_AGAIN = Skip(
    "voicemail_again", "one voicemail email per call: this call's voicemail already has it"
)


@dataclass(frozen=True)
class Routing:
    notices: tuple[NoticePlan, ...]
    # Why nothing was queued, when nothing was.
    skipped: Skip | None = None
    # Why, should the queue find every notice's dedupe key taken already (only it can
    # tell: another leg of the same call may be queued in the same commit).
    if_deduplicated: Skip | None = None


def subscriber_after(event: Event, current: Subscriber | None) -> Subscriber | None:
    """The subscriber as this event leaves it."""
    data = event.data
    if isinstance(data, AccountCreated):
        return Subscriber(
            account_id=data.account_id,
            email=data.email,
            name=data.name if data.name is not None else (current.name if current else None),
            username=data.username,
            language=data.language or (current.language if current else None),
            timezone=data.timezone or (current.timezone if current else None),
        )
    if current is None:
        return None
    if isinstance(data, AccountUpdated):
        return Subscriber(
            account_id=current.account_id,
            email=data.email or current.email,
            name=data.name if data.name is not None else current.name,
            username=current.username,
            language=data.language or current.language,
            timezone=data.timezone or current.timezone,
            closed_at=current.closed_at,
        )
    if isinstance(data, AccountClosed):
        return replace(current, closed_at=data.closed_at)
    return current


def notice_kind(event: Event, facts: Facts) -> str | None:
    """The template a notice of this event uses, or None when the event sends nothing."""
    data = event.data
    if isinstance(data, AccountUpdated):
        return "account.email_changed" if facts.previous_email else None
    if isinstance(data, BalanceUpdated):
        crossing = facts.credit
        if crossing is None or crossing.notify is None:
            return None
        return "credit.critical" if crossing.notify is Level.CRITICAL else "credit.low"
    return event.type


def route(
    event: Event,
    subscriber: Subscriber | None,
    facts: Facts,
    defaults: DefaultsSettings,
    calls: CallSettings,
    now: datetime,
    *,
    hourly_cap: int = 0,
) -> Routing:
    # Long on purpose: the order of these checks is the policy (who is told nothing and why,
    # then when, then to whom), and it reads top to bottom; the event types' own terms, the
    # timing and the storms are in their own functions.
    data = event.data
    if subscriber is None:
        return Routing((), skipped=UNKNOWN_ACCOUNT)
    kind = notice_kind(event, facts)
    category = Category.SECURITY if kind == "account.email_changed" else data.category
    if kind is None or category is None:
        if isinstance(data, BalanceUpdated):
            return Routing((), skipped=facts.credit_skip or NO_CROSSING)
        return Routing((), skipped=UPDATES_ONLY)
    mandatory = category in MANDATORY_CATEGORIES
    if subscriber.closed_at is not None and not mandatory:
        return Routing((), skipped=ACCOUNT_CLOSED)
    mode = mode_for(category, subscriber.preferences, defaults)
    if mode == "off":
        return Routing((), skipped=_why_off(category, subscriber.preferences))
    if isinstance(data, CallMissed) and facts.voicemail_exists:
        return Routing((), skipped=VOICEMAIL_HAS_IT)

    language = subscriber.language or defaults.language
    zone = subscriber.timezone or defaults.timezone
    reasons = [f"category {category.value}" + (" (mandatory)" if mandatory else "")]
    own = _own_terms(data, facts, calls, now)
    reasons += own.reasons

    due_at, digest, timing = when_due(
        kind, category, mode, subscriber, defaults, zone, own.due_at, waited=own.due_at > now
    )

    # Routed as usual, but held while the account is restricted: lifting the restriction
    # releases them as they were planned. The subscriber's row is locked for the whole
    # wave, so the flag read here is the one at commit (a restriction waits for the lock).
    restricted = subscriber.restricted_at is not None and not mandatory
    # Storms: only what can wait, and only one email at a time per address.
    can_gather = digest is None and not mandatory and kind not in IMMEDIATE_KINDS

    def plan(recipient: str, extra: Mapping[str, Any], why: str | None = None) -> NoticePlan:
        when, gathered, more = due_at, digest, [*timing, *([why] if why else [])]
        if can_gather:
            when, gathered, more = gather_storm(
                kind,
                category,
                subscriber,
                facts.recent.get(recipient.lower()),
                defaults,
                calls,
                hourly_cap,
                zone,
                due_at,
                more,
                wanted=own.due_at,
            )
        return NoticePlan(
            kind=kind,
            category=category,
            recipient=recipient,
            language=language,
            timezone=zone,
            due_at=when,
            reasons=tuple(reasons + more),
            context={**own.context, **extra},
            dedupe_key=own.dedupe_key,
            digest=gathered,
            restricted=restricted,
        )

    if kind == "account.email_changed":
        assert facts.previous_email is not None
        change = {"old_email": facts.previous_email, "new_email": subscriber.email}
        return Routing(
            (
                plan(
                    facts.previous_email,
                    {**change, "recipient_role": "old"},
                    TO_THE_PREVIOUS_ADDRESS,
                ),
                plan(subscriber.email, {**change, "recipient_role": "new"}),
            ),
            if_deduplicated=own.if_deduplicated,
        )
    recipients, why = _deliverable(category, subscriber, facts.undeliverable, mandatory)
    if not recipients:
        assert isinstance(why, Skip)
        return Routing((), skipped=why)

    def why_here(recipient: str) -> str | None:
        if isinstance(why, str):  # the usual addresses are undeliverable
            return why
        return None if recipient == subscriber.email else _why_address(category, subscriber)

    return Routing(
        tuple(plan(recipient, {}, why_here(recipient)) for recipient in recipients),
        if_deduplicated=own.if_deduplicated,
    )


@dataclass(frozen=True)
class _Terms:
    """What an event type adds to its notices: when they are due before quiet hours and
    digests have their say, the key that keeps one notice per call, the template's extras."""

    due_at: datetime
    reasons: tuple[str, ...] = ()
    dedupe_key: str | None = None
    if_deduplicated: Skip | None = None
    context: dict[str, Any] = field(default_factory=dict)


def _own_terms(data: EventData, facts: Facts, calls: CallSettings, now: datetime) -> _Terms:
    if isinstance(data, CallMissed):
        # Later legs of the call find this key taken; their events say so (LATER_LEG).
        key = f"call:{data.call_id}"
        if not data.to_voicemail:
            return _Terms(now, dedupe_key=key, if_deduplicated=LATER_LEG)
        wait = calls.voicemail_wait_seconds
        return _Terms(
            now + timedelta(seconds=wait),
            (
                f"went to voicemail: waits {wait:g} s for a voicemail of the same call, whose"
                " email would tell this missed call too",
            ),
            key,
            LATER_LEG,
        )
    if isinstance(data, VoicemailReceived):
        merged = dict(facts.merged_call) if facts.merged_call else None
        return _Terms(
            now,
            ("the missed call of the same call is told in this email",) if merged else (),
            f"voicemail:{data.call_id}" if data.call_id else None,
            VOICEMAIL_AGAIN if data.call_id else None,
            {"missed_call": merged},
        )
    if isinstance(data, IpAllowlistChanged):
        return _Terms(now, context=_allowlist_diff(data.previous, data.current))
    if isinstance(data, BalanceUpdated):
        assert facts.credit is not None
        return _Terms(
            now,
            (f"balance crossed below {facts.credit.threshold} {data.currency}",),
            context={
                "threshold": str(facts.credit.threshold),
                "days_left": facts.credit_days_left,
            },
        )
    return _Terms(now)


def _deliverable(
    category: Category, subscriber: Subscriber, undeliverable: frozenset[str], mandatory: bool
) -> tuple[tuple[str, ...], Skip | str | None]:
    """The category's addresses without the undeliverable ones, and why not the usual ones
    (a Skip when there are none, a reason for each notice when others take their place).
    A mandatory notice with none left goes to the account's other addresses; with none at
    all, to its own (it will fail and show in the dead letters: the admin is told, the
    subscriber not forgotten)."""
    chosen = addresses_for(category, subscriber.preferences, subscriber.email)
    usable = tuple(a for a in chosen if a.lower() not in undeliverable)
    if usable:
        return usable, None
    one = len(chosen) == 1
    bounced = (
        "the address is undeliverable (hard bounces)"
        if one
        else f"all {len(chosen)} addresses are undeliverable (hard bounces)"
    )
    if not mandatory:
        return (), Skip("undeliverable", f"{bounced}: nothing is sent to {'it' if one else 'them'}")
    others = tuple(
        a
        for a in all_addresses(subscriber.preferences, subscriber.email)
        if a.lower() not in undeliverable
    )
    if others:
        return others, f"{bounced}: a mandatory notice goes to the account's other addresses"
    return chosen, (
        "every address of the account is undeliverable (hard bounces): a mandatory notice is"
        " sent anyway, to fail and show in the dead letters"
    )


def _why_off(category: Category, preferences: Preferences) -> Skip:
    if category.value in preferences.modes:
        return Skip("category_off", f"the subscriber turned {category.value} notices off")
    return Skip(
        "category_off_by_default",
        f"{category.value} notices are off by default ([defaults.modes]) and the subscriber"
        " did not choose otherwise",
    )


def route_broadcast(
    kind: str,
    category: Category,
    subscriber: Subscriber,
    defaults: DefaultsSettings,
    now: datetime,
    *,
    dedupe_key: str,
    reasons: tuple[str, ...],
    suppressed: frozenset[str] = frozenset(),
    undeliverable: frozenset[str] = frozenset(),
) -> tuple[NoticePlan, ...]:
    """The notices of a broadcast for one open account: to the category's addresses (less
    the suppressed and the undeliverable ones), after the subscriber's quiet hours, in their
    digest if they chose one. Mandatory broadcasts ignore the mode; consent is checked by the
    caller's query."""
    mode = mode_for(category, subscriber.preferences, defaults)
    if mode == "off":
        return ()
    zone = subscriber.timezone or defaults.timezone
    due_at, digest, timing = when_due(kind, category, mode, subscriber, defaults, zone, now)
    return tuple(
        NoticePlan(
            kind=kind,
            category=category,
            recipient=recipient,
            language=subscriber.language or defaults.language,
            timezone=zone,
            due_at=due_at,
            reasons=(*reasons, *timing),
            dedupe_key=dedupe_key,
            digest=digest,
        )
        for recipient in _deliverable(
            category, subscriber, undeliverable, category in MANDATORY_CATEGORIES
        )[0]
        if recipient.lower() not in suppressed
    )


TO_THE_PREVIOUS_ADDRESS = "sent to the previous address too, in case the change was not the owner's"
TO_AN_EXTRA_ADDRESS = "also sent to this address of the account"


def _why_address(category: Category, subscriber: Subscriber) -> str:
    if category.value in subscriber.preferences.addresses:
        return _to_the_category_address(category.value)
    return TO_AN_EXTRA_ADDRESS


def _to_the_category_address(category: str) -> str:
    return f"{category} notices go to this address"


def recipient_reasons(category: str) -> tuple[str, ...]:
    """The reasons of a notice that speak of its own recipient: a copy of it to another
    address (a reroute after a hard bounce) must not repeat them."""
    return (_to_the_category_address(category), TO_AN_EXTRA_ADDRESS, TO_THE_PREVIOUS_ADDRESS)


def _allowlist_diff(previous: list[str], current: list[str]) -> dict[str, list[str]]:
    def key(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(value, strict=False)

    before = {key(v): v for v in previous}
    after = {key(v): v for v in current}
    return {
        "added": [after[k] for k in after if k not in before],
        "removed": [before[k] for k in before if k not in after],
    }
