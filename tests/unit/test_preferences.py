"""Preference rules: explicit choices win, everything else follows the current defaults."""

from __future__ import annotations

from datetime import time

from notifyd.catalogue.events import Category
from notifyd.http.pages.shell import CATEGORY_NAMES
from notifyd.http.pages.words import CATEGORY_DESCRIPTIONS, MANDATORY_NAMES
from notifyd.model import Preferences, QuietHours
from notifyd.rules.preferences import addresses_for, effective, mode_for, quiet_hours_for
from notifyd.settings import DefaultsSettings

DEFAULTS = DefaultsSettings(quiet_hours=QuietHours(time(22), time(8)), modes={"billing": "off"})


def test_mandatory_categories_are_always_immediate() -> None:
    chosen = Preferences(modes={"security": "off", "service": "off"})

    assert mode_for(Category.SECURITY, chosen, DEFAULTS) == "immediate"
    assert mode_for(Category.SERVICE, chosen, DEFAULTS) == "immediate"


def test_an_explicit_mode_wins_and_an_absent_one_follows_the_default() -> None:
    chosen = Preferences(modes={"calls": "off", "billing": "immediate"})

    assert mode_for(Category.CALLS, chosen, DEFAULTS) == "off"
    assert mode_for(Category.BILLING, chosen, DEFAULTS) == "immediate"
    assert mode_for(Category.BILLING, Preferences(), DEFAULTS) == "off"
    assert mode_for(Category.FAX, Preferences(), DEFAULTS) == "immediate"


def test_quiet_hours_absent_none_or_own() -> None:
    assert quiet_hours_for(Preferences(), DEFAULTS) == QuietHours(time(22), time(8))
    assert quiet_hours_for(Preferences(quiet_hours=""), DEFAULTS) is None
    own = quiet_hours_for(Preferences(quiet_hours="23:30-06:15"), DEFAULTS)
    assert own == QuietHours(time(23, 30), time(6, 15))


def test_a_category_address_overrides_the_main_one() -> None:
    chosen = Preferences(addresses={"fax": ("office@client.example",)})

    assert addresses_for(Category.FAX, chosen, "ana@client.example") == ("office@client.example",)
    assert addresses_for(Category.CALLS, chosen, "ana@client.example") == ("ana@client.example",)


def test_extra_addresses_get_every_category_without_its_own_addresses() -> None:
    chosen = Preferences(
        addresses={"fax": ("office@client.example", "scan@client.example")},
        extra_emails=("ANA@client.example", "boss@client.example"),
    )

    # The account's own address first; the same address in another case only once.
    assert addresses_for(Category.CALLS, chosen, "ana@client.example") == (
        "ana@client.example",
        "boss@client.example",
    )
    assert addresses_for(Category.FAX, chosen, "ana@client.example") == (
        "office@client.example",
        "scan@client.example",
    )


def test_an_address_stored_as_one_string_reads_as_one_address() -> None:
    stored = {"addresses": {"fax": "office@client.example"}, "extra_emails": ["b@x.example"]}

    chosen = Preferences.from_json(stored)

    assert chosen.addresses == {"fax": ("office@client.example",)}
    assert chosen.extra_emails == ("b@x.example",)
    assert chosen.to_json()["addresses"] == {"fax": ["office@client.example"]}


def test_stored_json_round_trips_and_keeps_only_explicit_choices() -> None:
    chosen = Preferences(modes={"calls": "off"}, quiet_hours="", addresses={})

    assert chosen.to_json() == {"modes": {"calls": "off"}, "quiet_hours": ""}
    assert Preferences.from_json(chosen.to_json()) == chosen
    assert Preferences.from_json(None) == Preferences()
    assert Preferences().to_json() == {}


def test_effective_view_lists_every_category() -> None:
    view = effective(Preferences(modes={"calls": "off"}), DEFAULTS)

    assert view["modes"]["calls"] == "off"
    assert view["modes"]["billing"] == "off"
    assert view["modes"]["security"] == "immediate"
    assert set(view["modes"]) == {c.value for c in Category}
    assert view["quiet_hours"] == "22:00-08:00"


def test_every_category_on_the_page_has_a_name_and_a_sentence_in_each_language() -> None:
    for language in ("ro", "en"):
        names = {**CATEGORY_NAMES[language], **MANDATORY_NAMES[language]}
        missing = [
            c.value
            for c in Category
            if c.value not in names or c.value not in CATEGORY_DESCRIPTIONS[language]
        ]
        assert missing == [], language
