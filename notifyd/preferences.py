"""A subscriber's notification preferences: pure rules, no I/O.

Only explicit choices are stored. Anything the subscriber never set follows the admin's
*current* defaults from the config, not a copy taken when the account was created.
Security and service notices are mandatory: they cannot be turned off or redirected
into a digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from notifyd.events import MANDATORY_CATEGORIES, Category
from notifyd.settings import DefaultsSettings, QuietHours, parse_quiet_hours

MODES = ("immediate", "hourly", "daily", "off")
# Modes the delivery engine can honour today; digests come with the digest sender.
AVAILABLE_MODES = ("immediate", "off")
CONFIGURABLE = tuple(c.value for c in Category if c not in MANDATORY_CATEGORIES)


@dataclass(frozen=True)
class Preferences:
    """Explicit choices. An absent key means "follow the default"."""

    modes: Mapping[str, str] = field(default_factory=dict)
    # Absent: the default quiet hours; "" : none; "22:00-07:00": these.
    quiet_hours: str | None = None
    # Category -> address, for notices that should go elsewhere (faxes to the office).
    addresses: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> Preferences:
        stored = stored or {}
        return cls(
            modes=dict(stored.get("modes", {})),
            quiet_hours=stored.get("quiet_hours"),
            addresses=dict(stored.get("addresses", {})),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.modes:
            data["modes"] = dict(self.modes)
        if self.quiet_hours is not None:
            data["quiet_hours"] = self.quiet_hours
        if self.addresses:
            data["addresses"] = dict(self.addresses)
        return data


def mode_for(category: Category, preferences: Preferences, defaults: DefaultsSettings) -> str:
    if category in MANDATORY_CATEGORIES:
        return "immediate"
    return preferences.modes.get(category.value) or defaults.modes.get(category.value, "immediate")


def quiet_hours_for(preferences: Preferences, defaults: DefaultsSettings) -> QuietHours | None:
    if preferences.quiet_hours is None:
        return defaults.quiet_hours
    return parse_quiet_hours(preferences.quiet_hours)


def address_for(category: Category, preferences: Preferences, email: str) -> str:
    return preferences.addresses.get(category.value) or email


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
    }
