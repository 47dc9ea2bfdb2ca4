"""A subscriber's notification preferences: pure rules, no I/O.

Only explicit choices are stored. Anything the subscriber never set follows the admin's
*current* defaults from the config, not a copy taken when the account was created.
Security and service notices are mandatory: they cannot be turned off or redirected
into a digest.
"""

from __future__ import annotations

from datetime import time
from typing import Any

from notifyd.catalogue.events import (
    CONFIGURABLE_CATEGORIES,
    MANDATORY_CATEGORIES,
    OFF_BY_DEFAULT,
    Category,
)
from notifyd.model import Preferences, QuietHours, parse_quiet_hours, parse_time_of_day
from notifyd.settings import DefaultsSettings

CONFIGURABLE = CONFIGURABLE_CATEGORIES


def mode_for(category: Category, preferences: Preferences, defaults: DefaultsSettings) -> str:
    if category in MANDATORY_CATEGORIES:
        return "immediate"
    fallback = "off" if category in OFF_BY_DEFAULT else "immediate"
    return preferences.modes.get(category.value) or defaults.modes.get(category.value, fallback)


def off_by_default(defaults: DefaultsSettings) -> frozenset[str]:
    """The categories whose notices the defaults turn off: a subscriber who chose no mode
    of one gets none of them, also those queued before a reload turned it off (the claim
    withholds them). Never a mandatory one."""
    return frozenset(
        category
        for category in CONFIGURABLE
        if mode_for(Category(category), Preferences(), defaults) == "off"
    )


def quiet_hours_for(preferences: Preferences, defaults: DefaultsSettings) -> QuietHours | None:
    if preferences.quiet_hours is None:
        return defaults.quiet_hours
    return parse_quiet_hours(preferences.quiet_hours)


def digest_time_for(preferences: Preferences, defaults: DefaultsSettings) -> time:
    if preferences.digest_time is None:
        return defaults.digest_time
    return parse_time_of_day(preferences.digest_time)


def addresses_for(category: Category, preferences: Preferences, email: str) -> tuple[str, ...]:
    """Where a category's notices go: its own addresses if set, else the account's address
    and its extra ones; each address once (compared without regard to case)."""
    chosen = preferences.addresses.get(category.value) or (email, *preferences.extra_emails)
    seen: set[str] = set()
    unique = []
    for address in chosen:
        if address.lower() not in seen:
            seen.add(address.lower())
            unique.append(address)
    return tuple(unique)


def all_addresses(preferences: Preferences, email: str) -> tuple[str, ...]:
    """Every address of the account: its own, the extra ones and the per-category ones."""
    everything = [email, *preferences.extra_emails]
    for chosen in preferences.addresses.values():
        everything.extend(chosen)
    unique: dict[str, str] = {}
    for address in everything:
        unique.setdefault(address.lower(), address)
    return tuple(unique.values())


def effective(preferences: Preferences, defaults: DefaultsSettings) -> dict[str, Any]:
    """What applies now, explicit or default, for the API to show."""
    quiet = quiet_hours_for(preferences, defaults)
    return {
        "modes": {
            category: mode_for(Category(category), preferences, defaults)
            for category in CONFIGURABLE
        }
        | {category.value: "immediate" for category in MANDATORY_CATEGORIES},
        "quiet_hours": str(quiet) if quiet else "",
        "digest_time": digest_time_for(preferences, defaults).strftime("%H:%M"),
    }
