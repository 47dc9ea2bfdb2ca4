"""The preference page: GET shows the subscriber's effective choices in a form; POST saves
what they changed (a value submitted unchanged stays "follow the default")."""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web

from notifyd.catalogue.events import Category
from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.operations import Answer, Routes
from notifyd.http.pages import renewal, shell
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.intake import consent
from notifyd.model import MODES, Preferences, Subscriber, parse_quiet_hours, parse_time_of_day
from notifyd.rules import preferences as preferences_module
from notifyd.rules.preferences import CONFIGURABLE
from notifyd.storage import audit as audit_store
from notifyd.storage import consent as consent_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)
routes = Routes()
# The preference form as a browser sends it (_form writes it, _changes reads it).
PREFERENCE_FORM = {
    "type": "object",
    "properties": {
        **{
            f"mode.{category}": {"type": "string", "enum": list(MODES)}
            for category in CONFIGURABLE
            if category != Category.MARKETING.value
        },
        "quiet_hours": {"type": "string"},
        "digest_time": {"type": "string"},
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "offers": {"type": "string", "enum": ["yes"]},
        shell.CSRF_FIELD: {
            "type": "string",
            "description": "From the page's form: proves the POST came from it",
        },
    },
    "required": [shell.CSRF_FIELD],
}


def _form(
    request: web.Request,
    subscriber: Subscriber,
    runtime: Runtime,
    offers: bool,
    language: str,
    note: str = "",
) -> str:
    words = shell.TEXT[language]
    view = preferences_module.effective(subscriber.preferences, runtime.settings.defaults)
    rows = []
    for category in CONFIGURABLE:
        if category == Category.MARKETING.value:
            continue  # offers are a consent, asked below
        options = "".join(
            f'<option value="{mode}"{" selected" if view["modes"][category] == mode else ""}>'
            f"{shell.MODE_NAMES[language][mode]}</option>"
            for mode in MODES
        )
        rows.append(
            f'<p><label>{shell.CATEGORY_NAMES[language][category]}: <select name="mode.{category}">'
            f"{options}</select></label></p>"
        )
    current_language = subscriber.language or runtime.settings.defaults.language
    languages = "".join(
        f'<option value="{code}"{" selected" if code == current_language else ""}>{code}</option>'
        for code in LANGUAGES
    )
    action = html.escape(request.path)
    return (
        note
        + f'<form method="post" action="{action}">'
        + shell.form_token_field(runtime, request.match_info["token"])
        + "".join(rows)
        + f"<p>{words['mandatory']}</p>"
        + f'<p><label>{words["quiet_hours"]}: <input name="quiet_hours" '
        f'value="{html.escape(view["quiet_hours"])}"></label></p>'
        + f'<p><label>{words["digest_time"]}: <input name="digest_time" '
        f'value="{html.escape(view["digest_time"])}"></label></p>'
        + f'<p><label>{words["language"]}: <select name="language">{languages}</select>'
        "</label></p>" + f'<p><label><input type="checkbox" name="offers" value="yes"'
        f"{' checked' if offers else ''}> {words['offers']}</label></p>"
        + f'<p><button type="submit">{words["save"]}</button></p></form>'
    )


@routes.get(
    "/v1/preferences/{token}",
    "The subscriber's preference page, from the link in every email",
    answers={
        200: shell.html_answer("A form"),
        404: shell.NOT_A_LINK,
        410: renewal.OFFER,
    },
)
async def preferences_form(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    account_id = await renewal.open_preferences(request, runtime)
    if isinstance(account_id, web.Response):
        return account_id
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        if subscriber is None:
            return shell.invalid(shell.asked_language(request), "preferences")
        offers = await consent_store.has_consent(conn, account_id)
    language = shell.asked_language(
        request, subscriber.language or runtime.settings.defaults.language
    )
    return shell.html_page(
        language,
        shell.TEXT[language]["preferences"],
        _form(request, subscriber, runtime, offers, language),
    )


def _changes(form: Any, subscriber: Subscriber, runtime: Runtime) -> tuple[Subscriber, list[str]]:
    """The subscriber with what the form changed; the problems, if any (nothing is saved)."""
    defaults = runtime.settings.defaults
    current = subscriber.preferences
    view = preferences_module.effective(current, defaults)
    problems: list[str] = []
    modes = dict(current.modes)
    for category in CONFIGURABLE:
        chosen = form.get(f"mode.{category}")
        if chosen is None or chosen == view["modes"][category]:
            continue
        if chosen not in MODES:
            problems.append(f"{category}: {chosen!r}")
            continue
        modes[category] = chosen
    quiet = current.quiet_hours
    asked = form.get("quiet_hours")
    if asked is not None and asked.strip() != view["quiet_hours"]:
        try:
            parsed = parse_quiet_hours(asked)
            quiet = str(parsed) if parsed else ""
        except ValueError as error:
            problems.append(f"quiet hours {error}")
    digest_time = current.digest_time
    asked = form.get("digest_time")
    if asked is not None and asked.strip() != view["digest_time"]:
        try:
            digest_time = parse_time_of_day(asked).strftime("%H:%M")
        except ValueError as error:
            problems.append(f"digest time {error}")
    language = subscriber.language
    asked = form.get("language")
    if asked is not None and asked != (subscriber.language or defaults.language):
        if asked in LANGUAGES:
            language = asked
        else:
            problems.append(f"language {asked!r}")
    preferences: Preferences = replace(
        current, modes=modes, quiet_hours=quiet, digest_time=digest_time
    )
    return replace(subscriber, preferences=preferences, language=language), problems


def _changed_names(before: Subscriber, after: Subscriber) -> list[str]:
    """What the audit trail says the form changed: names, never the values."""
    was, now = before.preferences, after.preferences
    names = [
        f"modes.{category}"
        for category in sorted(set(was.modes) | set(now.modes))
        if was.modes.get(category) != now.modes.get(category)
    ]
    names += [
        name for name in ("quiet_hours", "digest_time") if getattr(was, name) != getattr(now, name)
    ]
    return names + (["language"] if before.language != after.language else [])


@routes.post(
    "/v1/preferences/{token}",
    "Save the preference form; unchanged values keep following the defaults",
    other_bodies={"application/x-www-form-urlencoded": PREFERENCE_FORM},
    body_required=False,
    answers={
        200: shell.html_answer("Saved"),
        403: shell.html_answer(
            "From another site, or without the page's form token; nothing saved"
        ),
        404: shell.NOT_A_LINK,
        410: renewal.OFFER,
        413: Answer("Not the form", media_type="text/plain"),
        422: shell.html_answer("A value is wrong; nothing saved"),
    },
)
async def save_preferences(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    account_id = await renewal.open_preferences(request, runtime)
    if isinstance(account_id, web.Response):
        return account_id  # nothing saved
    if shell.cross_site(request, runtime):
        log.warning("cross-site preference change refused", account_id=account_id)
        return shell.refused(shell.asked_language(request), "preferences")
    if request.content_length is None or request.content_length > shell.FORM_LIMIT:
        return web.Response(status=413, text="the form is too large")
    form = await shell.read_form(request)
    given = form.get(shell.CSRF_FIELD) if form is not None else None
    if form is None or not shell.form_token_valid(runtime, request.match_info["token"], given):
        log.warning("preference change without the page's form token", account_id=account_id)
        return shell.refused(shell.asked_language(request), "preferences")
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await subscriber_store.get(conn, account_id, lock=True)
        if subscriber is None:
            return shell.invalid(shell.asked_language(request), "preferences")
        changed, problems = _changes(form, subscriber, runtime)
        offers = await consent_store.has_consent(conn, account_id)
        language = shell.asked_language(
            request, changed.language or runtime.settings.defaults.language
        )
        words = shell.TEXT[language]
        if problems:
            note = (
                f"<p><strong>{words['fix']}</strong></p><ul>"
                + "".join(f"<li>{html.escape(p)}</li>" for p in problems)
                + "</ul>"
            )
            body = _form(request, subscriber, runtime, offers, language, note)
            return shell.html_page(language, words["preferences"], body, status=422)
        saved = await subscriber_store.save_preferences(
            conn, changed, before=subscriber, erasure_key=runtime.erasure_key
        )
        await audit_store.record(
            conn,
            audit_store.SUBSCRIBER_LINK,
            "preferences.changed",
            account_id,
            {"fields": _changed_names(subscriber, saved), "via": "preferences"},
        )
        wants_offers = form.get("offers") == "yes"
        if wants_offers != offers:
            await _record_offers_choice(conn, saved, granted=wants_offers)
    log.info("preferences changed by the subscriber", account_id=account_id)
    note = f"<p><strong>{words['saved']}</strong></p>"
    body = _form(request, saved, runtime, wants_offers, language, note)
    return shell.html_page(language, words["preferences"], body)


async def _record_offers_choice(conn: Conn, saved: Subscriber, *, granted: bool) -> None:
    """The subscriber's own choice of offers, as the page's checkbox changed it: recorded
    as consent (with the wording shown) and in the audit trail."""
    # The subscriber's own choice: the one source that may lift a suppression.
    await consent.decide(
        conn,
        saved.account_id,
        [
            saved.email,
            *preferences_module.addresses_for(Category.MARKETING, saved.preferences, saved.email),
        ],
        granted=granted,
        source="subscriber",
        wording_version=shell.OFFERS_WORDING,
        recorded_by=None,
    )
    await audit_store.record(
        conn,
        audit_store.SUBSCRIBER_LINK,
        audit_store.consent_action(granted),
        saved.account_id,
        {"via": "preferences"},
    )
