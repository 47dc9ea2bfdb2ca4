"""The preference page's form without its I/O: what the template is given (form_context),
what a submitted form changes (changes), and those changes in words for the confirmation
(changes_in_words). preferences.py, the handlers, reads and saves; checks.py renders the
page with a sample subscriber through form_context, as a request would.

A value submitted unchanged stays "follow the default": a subscriber who only turns off
faxes keeps following the admin's other defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pydantic
from multidict import MultiDictProxy

from notifyd.catalogue.events import MANDATORY_CATEGORIES, Category
from notifyd.catalogue.fields import EmailAddress
from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.pages import shell, views
from notifyd.http.pages.words import (
    CATEGORY_DESCRIPTIONS,
    LABELS,
    LANGUAGE_NAMES,
    MANDATORY_NAMES,
    PROBLEMS,
)
from notifyd.logs import mask_email
from notifyd.model import MODES, Subscriber, parse_quiet_hours, parse_time_of_day
from notifyd.rules import preferences as preferences_module
from notifyd.rules.preferences import CONFIGURABLE
from notifyd.settings import Settings

# Offers are a consent (the checkbox), not a mode; their addresses follow the consent's.
CHOSEN_BY_MODE = tuple(c for c in CONFIGURABLE if c != Category.MARKETING.value)
_ADDRESS = pydantic.TypeAdapter(EmailAddress)
# What a refused save must say: a key of words.PROBLEMS and its values, put in words in the
# language of the page that answers (problems_in_words), known only once the form is read.
Problem = tuple[str, dict[str, str]]


def masked_account(account_id: str) -> str:
    """The account's number as the page shows it: its last four characters only (a
    forwarded email's page shows whose account it is, not its whole number)."""
    return "•" * max(len(account_id) - 4, 0) + account_id[-4:]


def form_context(
    subscriber: Subscriber, settings: Settings, offers: bool, language: str
) -> dict[str, Any]:
    """What preferences.html is given, the subscriber's effective choices among them."""
    view = preferences_module.effective(subscriber.preferences, settings.defaults)
    start, _, end = view["quiet_hours"].partition("-")
    descriptions = CATEGORY_DESCRIPTIONS[language]
    chosen = subscriber.preferences.addresses
    return {
        "words": shell.TEXT[language],
        "account": {
            "number": masked_account(subscriber.account_id),
            "address": mask_email(subscriber.email),
        },
        "categories": [
            {
                "key": category,
                "name": shell.topic_name(category, language),
                "description": descriptions.get(category, ""),
                "mode": view["modes"][category],
                # Masked, as the account's own: a forwarded email's page reveals no address.
                "addresses": ", ".join(mask_email(a) for a in chosen.get(category, ())),
            }
            for category in CHOSEN_BY_MODE
        ],
        "mandatory": [
            {"name": MANDATORY_NAMES[language][c.value], "description": descriptions[c.value]}
            for c in sorted(MANDATORY_CATEGORIES)
        ],
        "modes": [(mode, shell.MODE_NAMES[language][mode]) for mode in MODES],
        "quiet_from": start,
        "quiet_to": end,
        "digest_time": view["digest_time"],
        "timezone": subscriber.timezone or settings.defaults.timezone,
        "zones": views.time_zones(),
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "chosen_language": subscriber.language or settings.defaults.language,
        "voicemail_audio": subscriber.voicemail_audio,
        "offers": offers,
        "wording": shell.OFFERS_WORDING,
        "problems": [],
    }


def _quiet_hours(form: MultiDictProxy[str]) -> str | None:
    """The quiet hours the form asks for, as stored ("22:00-07:00", "" for none); None when
    the form does not say. The two time inputs, or the one text field of older pages."""
    if "quiet_hours" in form:
        return form["quiet_hours"].strip()
    if "quiet_from" not in form and "quiet_to" not in form:
        return None
    start, end = form.get("quiet_from", "").strip(), form.get("quiet_to", "").strip()
    if not start and not end:
        return ""
    if not start or not end:
        raise ValueError("needs both a start and an end, or neither")
    return f"{start}-{end}"


def _addresses(asked: str) -> tuple[str, ...]:
    """The addresses typed; ValueError carrying the first that is none."""
    found = []
    for part in asked.replace(";", ",").split(","):
        if part.strip():
            try:
                found.append(_ADDRESS.validate_python(part.strip()))
            except pydantic.ValidationError:
                raise ValueError(part.strip()) from None
    return tuple(found)


def _quiet_problem(asked: str) -> Problem:
    start, _, end = asked.partition("-")
    if start.strip() and start.strip() == end.strip():
        return ("quiet_equal", {})
    return ("quiet_invalid", {"value": asked})


def problems_in_words(problems: list[Problem], language: str) -> list[str]:
    """The refused save's problems as the page lists them, in `language`."""
    return [
        PROBLEMS[language][key].format(
            **{**values, "category": shell.topic_name(values.get("category", ""), language)}
        )
        for key, values in problems
    ]


def changes(
    form: MultiDictProxy[str], subscriber: Subscriber, settings: Settings
) -> tuple[Subscriber, list[Problem]]:
    """The subscriber with what the form changed; the problems, if any (nothing is saved)."""
    defaults = settings.defaults
    current = subscriber.preferences
    view = preferences_module.effective(current, defaults)
    problems: list[Problem] = []
    modes = dict(current.modes)
    addresses = dict(current.addresses)
    for category in CONFIGURABLE:
        chosen = form.get(f"mode.{category}")
        if chosen is not None and chosen != view["modes"][category]:
            if chosen in MODES:
                modes[category] = chosen
            else:
                problems.append(("mode", {"category": category, "value": chosen}))
        # The page shows no address to edit: typed ones replace the category's own, and
        # "reset" sends it to the account's address again; an empty field changes nothing.
        typed = form.get(f"addresses.{category}", "").strip()
        if form.get(f"addresses.{category}.reset") == "yes":
            addresses.pop(category, None)
        elif typed:
            try:
                addresses[category] = _addresses(typed)
            except ValueError as error:
                problems.append(("address", {"category": category, "value": str(error)}))
    quiet = current.quiet_hours
    try:
        asked = _quiet_hours(form)
    except ValueError:  # one of the two times without the other
        problems.append(("quiet_half", {}))
        asked = None
    if asked is not None and asked != view["quiet_hours"]:
        try:
            parsed = parse_quiet_hours(asked)
            quiet = str(parsed) if parsed else ""
        except ValueError:
            problems.append(_quiet_problem(asked))
    digest_time = current.digest_time
    asked = form.get("digest_time")
    if asked is not None and asked.strip() != view["digest_time"]:
        try:
            digest_time = parse_time_of_day(asked).strftime("%H:%M")
        except ValueError:
            problems.append(("digest_time", {"value": asked.strip()}))
    changed = replace(
        subscriber,
        preferences=replace(
            current, modes=modes, quiet_hours=quiet, digest_time=digest_time, addresses=addresses
        ),
    )
    return _account_choices(form, changed, settings, problems), problems


def _account_choices(
    form: MultiDictProxy[str], subscriber: Subscriber, settings: Settings, problems: list[Problem]
) -> Subscriber:
    """Language, time zone and voicemail audio: the account's own columns."""
    defaults = settings.defaults
    language = subscriber.language
    asked = form.get("language")
    if asked is not None and asked != (subscriber.language or defaults.language):
        if asked in LANGUAGES:
            language = asked
        else:
            problems.append(("language", {"value": asked}))
    timezone = subscriber.timezone
    asked = form.get("timezone")
    if asked is not None and asked.strip() != (subscriber.timezone or defaults.timezone):
        timezone = views.zone_named(asked)
        if timezone is None:
            problems.append(("timezone", {"value": asked.strip()}))
    audio = subscriber.voicemail_audio
    asked = form.get("voicemail_audio")
    if asked is not None:
        if asked in ("on", "off"):
            audio = asked == "on"
        else:
            problems.append(("voicemail_audio", {"value": asked}))
    return replace(subscriber, language=language, timezone=timezone, voicemail_audio=audio)


def changed_names(before: Subscriber, after: Subscriber) -> list[str]:
    """What the audit trail says the form changed: names, never the values."""
    was, now = before.preferences, after.preferences
    names = [
        f"modes.{category}"
        for category in sorted(set(was.modes) | set(now.modes))
        if was.modes.get(category) != now.modes.get(category)
    ]
    names += [
        f"addresses.{category}"
        for category in sorted(set(was.addresses) | set(now.addresses))
        if was.addresses.get(category) != now.addresses.get(category)
    ]
    names += [
        name for name in ("quiet_hours", "digest_time") if getattr(was, name) != getattr(now, name)
    ]
    return names + [
        name
        for name in ("language", "timezone", "voicemail_audio")
        if getattr(before, name) != getattr(after, name)
    ]


def changes_in_words(before: dict[str, Any], after: dict[str, Any], language: str) -> list[str]:
    """The confirmation's list: each choice that changed, as the page names it, with what it
    was. `before` and `after` are form_context() of the subscriber before and after."""
    labels = LABELS[language]
    modes = dict(after["modes"])
    lines = [
        f"{new['name']}: {modes[new['mode']]} ({labels['was']}: {modes[old['mode']]})"
        for old, new in zip(before["categories"], after["categories"], strict=True)
        if old["mode"] != new["mode"]
    ]
    lines += [
        f"{new['name']} – {labels['sent_to']}: {new['addresses'] or labels['default_address']}"
        for old, new in zip(before["categories"], after["categories"], strict=True)
        if old["addresses"] != new["addresses"]
    ]

    def quiet(context: dict[str, Any]) -> str:
        shown = f"{context['quiet_from']}–{context['quiet_to']}"
        return shown if context["quiet_from"] else labels["none"]

    def yes_no(value: bool) -> str:
        return labels["on"] if value else labels["off"]

    shown: dict[str, Callable[[dict[str, Any]], str]] = {
        "quiet_hours": quiet,
        "digest_time": lambda c: c["digest_time"],
        "timezone": lambda c: c["timezone"],
        "language": lambda c: LANGUAGE_NAMES[c["chosen_language"]],
        "voicemail_audio": lambda c: labels["audio_on" if c["voicemail_audio"] else "audio_off"],
        "offers": lambda c: yes_no(c["offers"]),
    }
    for name, show in shown.items():
        if show(before) != show(after):
            lines.append(f"{labels[name]}: {show(after)} ({labels['was']}: {show(before)})")
    return lines
