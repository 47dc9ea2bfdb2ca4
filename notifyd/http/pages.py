"""Subscriber pages reached from a signed link in an email: unsubscribe (RFC 8058) and the
preference page.

Unsubscribe: GET shows a page with a button and changes nothing (mail scanners follow
links); POST unsubscribes: that is what a mail client's one-click unsubscribe sends
("List-Unsubscribe=One-Click"), and what the button sends. Takes effect at once.

Preferences: GET shows the subscriber's effective choices in a form; POST saves what the
subscriber changed. A value submitted unchanged stays "follow the default", so a
subscriber who only turns off faxes keeps following the admin's other defaults.

Cross-site requests: a browser's POST is taken only from the page itself: it carries the
form token the page put in its form (bound to the link) and no Origin or Sec-Fetch-Site
of another site. A POST with neither header comes from no browser: a mail provider's
one-click unsubscribe (RFC 8058), which has no form token, and must still work.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import replace
from typing import Any

import structlog
from aiohttp import web
from yarl import URL

from notifyd.catalogue.events import Category
from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.operations import Answer, Routes
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.intake import consent
from notifyd.links import MARKETING
from notifyd.model import MODES, Preferences, Subscriber, parse_quiet_hours, parse_time_of_day
from notifyd.rules import preferences as preferences_module
from notifyd.rules.preferences import CONFIGURABLE
from notifyd.storage import consent as consent_store
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)

# The wording a subscriber agrees to on the preference page, recorded with their consent.
OFFERS_WORDING = "preferences-page-1"
# The preference form is a few hundred bytes; anything much larger is not from it.
FORM_LIMIT = 16 * 1024
# Named in the forms of both pages: proves a POST came from the page of that link.
CSRF_FIELD = "form_token"

# The pages' only style, allowed by its hash: no inline script or style can run, even if
# some text ever escaped html.escape.
PAGE_STYLE = "body{font-family:Arial,sans-serif;max-width:40em;margin:2em auto}"
_STYLE_HASH = base64.b64encode(hashlib.sha256(PAGE_STYLE.encode()).digest()).decode()
# Sent with every answer of the app (JSON ones too: a browser shown one runs nothing).
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

routes = Routes()


def _html(description: str) -> Answer:
    return Answer(description, media_type="text/html")


NOT_A_LINK = _html("Not a valid link")
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
        CSRF_FIELD: {
            "type": "string",
            "description": "From the page's form: proves the POST came from it",
        },
    },
    "required": [CSRF_FIELD],
}

CATEGORY_NAMES = {
    "ro": {
        "calls": "Apeluri nepreluate",
        "voicemail": "Mesaje vocale",
        "fax": "Faxuri",
        "billing": "Plăți și alimentări ale contului",
        "low_credit": "Credit scăzut",
        "marketing": "Oferte și modificări de tarife",
    },
    "en": {
        "calls": "Missed calls",
        "voicemail": "Voicemail",
        "fax": "Faxes",
        "billing": "Payments and top-ups",
        "low_credit": "Low credit",
        "marketing": "Offers and tariff changes",
    },
}

MODE_NAMES = {
    "ro": {
        "immediate": "Imediat",
        "hourly": "Rezumat orar",
        "daily": "Rezumat zilnic",
        "off": "Dezactivat",
    },
    "en": {
        "immediate": "At once",
        "hourly": "Hourly digest",
        "daily": "Daily digest",
        "off": "Off",
    },
}

TEXT: dict[str, dict[str, str]] = {
    "ro": {
        "title": "Dezabonare",
        "ask": "Nu mai doresc să primesc aceste mesaje (oferte și modificări de tarife).",
        "ask_digest": "Nu mai doresc să primesc aceste rezumate ({category}).",
        "button": "Dezabonare",
        "done": "V-ați dezabonat. Nu veți mai primi oferte la această adresă.",
        "done_digest": "V-ați dezabonat. Nu veți mai primi notificări: {category}.",
        "invalid": "Linkul nu este valid.",
        "refused": "Cererea nu vine din această pagină. Deschideți din nou linkul din email.",
        "preferences": "Preferințe de notificare",
        "mandatory": "Notificările de securitate și anunțurile de serviciu se trimit întotdeauna.",
        "quiet_hours": "Interval de liniște (de exemplu 22:00-08:00; gol: fără)",
        "digest_time": "Ora rezumatului zilnic",
        "language": "Limba mesajelor",
        "offers": "Doresc să primesc oferte și modificări de tarife",
        "save": "Salvează",
        "saved": "Preferințele au fost salvate.",
        "fix": "Preferințele nu au fost salvate:",
    },
    "en": {
        "title": "Unsubscribe",
        "ask": "I no longer want to receive these messages (offers and tariff changes).",
        "ask_digest": "I no longer want to receive these digests ({category}).",
        "button": "Unsubscribe",
        "done": "You are unsubscribed. This address will receive no more offers.",
        "done_digest": "You are unsubscribed. You will receive no more notices: {category}.",
        "invalid": "This link is not valid.",
        "refused": "This request did not come from this page. Open the link in the email again.",
        "preferences": "Notification preferences",
        "mandatory": "Security notices and service announcements are always sent.",
        "quiet_hours": "Quiet hours (for example 22:00-08:00; empty: none)",
        "digest_time": "Time of the daily digest",
        "language": "Language of the emails",
        "offers": "I want to receive offers and tariff changes",
        "save": "Save",
        "saved": "Your preferences are saved.",
        "fix": "Your preferences were not saved:",
    },
}


def _page(language: str, title: str, body: str, status: int = 200) -> web.Response:
    document = (
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{PAGE_STYLE}</style></head>"
        "<body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    # The token in the address is the credential: keep the page out of caches and referrers.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return web.Response(text=document, content_type="text/html", status=status, headers=headers)


def _language(request: web.Request, fallback: str = "ro") -> str:
    asked = request.query.get("lang")
    return asked if asked in LANGUAGES else fallback


def _invalid(language: str, page: str) -> web.Response:
    """A link that is not valid, under the heading of the page it was for ("title" for
    unsubscribe, "preferences")."""
    words = TEXT[language]
    return _page(language, words[page], f"<p>{words['invalid']}</p>", status=404)


def _refused(language: str, page: str) -> web.Response:
    words = TEXT[language]
    return _page(language, words[page], f"<p>{words['refused']}</p>", status=403)


def _cross_site(request: web.Request, runtime: Runtime) -> bool:
    """A browser says this POST comes from another site, or hides where it comes from."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    # "none": the user's own action (a typed address, a bookmark), no site behind it.
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    # The public address links point at, or the one this request was sent to (the Host
    # header is the browser's, not the other site's to choose).
    own = {f"http://{request.host}", f"https://{request.host}"}
    if runtime.links is not None:
        public = URL(runtime.links.base_url)
        own.add(str(public.origin()))
    return origin.rstrip("/") not in own  # "null" (a sandboxed or opaque page) too


def _has_browser_headers(request: web.Request) -> bool:
    return "Origin" in request.headers or "Sec-Fetch-Site" in request.headers


def _form_token_field(runtime: Runtime, link_token: str) -> str:
    assert runtime.links is not None  # the page of a valid link
    value = runtime.links.form_token(link_token)
    return f'<input type="hidden" name="{CSRF_FIELD}" value="{value}">'


def _form_token_valid(runtime: Runtime, link_token: str, given: object) -> bool:
    return (
        runtime.links is not None
        and isinstance(given, str)
        and runtime.links.form_token_valid(link_token, given)
    )


# -- unsubscribe ------------------------------------------------------------------------------


def _topic_name(topic: str, language: str) -> str:
    return CATEGORY_NAMES[language].get(topic, topic)


async def _their_language(request: web.Request, runtime: Runtime, account_id: str) -> str:
    """?lang= if given, else the subscriber's language, else the default."""
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
    chosen = subscriber.language if subscriber else None
    return _language(request, chosen or runtime.settings.defaults.language)


@routes.get(
    "/v1/unsubscribe/{token}",
    "The unsubscribe page of a signed link (changes nothing)",
    answers={200: _html("A page with a button"), 404: NOT_A_LINK},
)
async def unsubscribe_form(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    token = request.match_info["token"]
    found = runtime.links.read_unsubscribe(token) if runtime.links else None
    if found is None:
        return _invalid(_language(request), "title")
    language = await _their_language(request, runtime, found.account_id)
    words = TEXT[language]
    ask = (
        words["ask"]
        if found.topic == MARKETING
        else words["ask_digest"].format(category=_topic_name(found.topic, language))
    )
    action = html.escape(request.path)
    form = (
        f"<p>{html.escape(ask)}</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        + _form_token_field(runtime, token)
        + f'<button type="submit">{words["button"]}</button></form>'
    )
    return _page(language, words["title"], form)


@routes.post(
    "/v1/unsubscribe/{token}",
    "Unsubscribe at once (RFC 8058 one-click, or the page's button)",
    description="A mail provider's one-click POST carries no Origin and no form token; a "
    "browser's must come from the page, with its form_token.",
    answers={
        200: _html("Unsubscribed"),
        403: _html(
            "From another site, or a browser's POST without the page's form token; nothing changed"
        ),
        404: NOT_A_LINK,
    },
)
async def unsubscribe(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    token = request.match_info["token"]
    found = runtime.links.read_unsubscribe(token) if runtime.links else None
    if found is None:
        return _invalid(_language(request), "title")
    language = await _their_language(request, runtime, found.account_id)
    words = TEXT[language]
    if _cross_site(request, runtime):
        log.warning("cross-site unsubscribe refused", account_id=found.account_id)
        return _refused(language, "title")
    # Read only a form of the page's size: a one-click POST needs no body to be taken, as
    # before forms had tokens (RFC 8058 fixes what it sends, not how it is framed).
    small = request.content_length is not None and request.content_length <= FORM_LIMIT
    given = (await request.post()).get(CSRF_FIELD) if small else None
    # The page's own button sends its form token; a mail provider's one-click POST has
    # none, and no browser headers either. A browser's POST without it is not from us.
    from_browser = given is not None or _has_browser_headers(request)
    if from_browser and not _form_token_valid(runtime, token, given):
        log.warning("unsubscribe without the page's form token", account_id=found.account_id)
        return _refused(language, "title")
    async with runtime.pool.acquire() as conn, conn.transaction():
        if found.topic == MARKETING:
            await consent.decide(
                conn,
                found.account_id,
                [found.address],
                granted=False,
                source="unsubscribe-link",
                wording_version="list-unsubscribe",
                recorded_by=None,
            )
            done = words["done"]
        else:
            # From a digest: that category's notices stop (the preference page turns them
            # back on).
            subscriber = await subscriber_store.get(conn, found.account_id, lock=True)
            if subscriber is not None and found.topic in CONFIGURABLE:
                modes = {**subscriber.preferences.modes, found.topic: "off"}
                await subscriber_store.save_preferences(
                    conn,
                    replace(subscriber, preferences=replace(subscriber.preferences, modes=modes)),
                )
            done = words["done_digest"].format(category=_topic_name(found.topic, language))
    log.info("unsubscribed by link", account_id=found.account_id, topic=found.topic)
    return _page(language, words["title"], f"<p>{html.escape(done)}</p>")


# -- preferences ------------------------------------------------------------------------------


async def _subscriber_of(request: web.Request) -> tuple[Runtime, str | None]:
    runtime = request.app[RUNTIME]
    if runtime.links is None:
        return runtime, None
    return runtime, runtime.links.read_preferences(request.match_info["token"])


def _form(
    request: web.Request,
    subscriber: Subscriber,
    runtime: Runtime,
    offers: bool,
    language: str,
    note: str = "",
) -> str:
    words = TEXT[language]
    view = preferences_module.effective(subscriber.preferences, runtime.settings.defaults)
    rows = []
    for category in CONFIGURABLE:
        if category == Category.MARKETING.value:
            continue  # offers are a consent, asked below
        options = "".join(
            f'<option value="{mode}"{" selected" if view["modes"][category] == mode else ""}>'
            f"{MODE_NAMES[language][mode]}</option>"
            for mode in MODES
        )
        rows.append(
            f'<p><label>{CATEGORY_NAMES[language][category]}: <select name="mode.{category}">'
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
        + _form_token_field(runtime, request.match_info["token"])
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
    answers={200: _html("A form"), 404: NOT_A_LINK},
)
async def preferences_form(request: web.Request) -> web.Response:
    runtime, account_id = await _subscriber_of(request)
    if account_id is None:
        return _invalid(_language(request), "preferences")
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
        if subscriber is None:
            return _invalid(_language(request), "preferences")
        offers = await consent_store.has_consent(conn, account_id)
    language = _language(request, subscriber.language or runtime.settings.defaults.language)
    return _page(
        language,
        TEXT[language]["preferences"],
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


@routes.post(
    "/v1/preferences/{token}",
    "Save the preference form; unchanged values keep following the defaults",
    other_bodies={"application/x-www-form-urlencoded": PREFERENCE_FORM},
    body_required=False,
    answers={
        200: _html("Saved"),
        403: _html("From another site, or without the page's form token; nothing saved"),
        404: NOT_A_LINK,
        413: Answer("Not the form", media_type="text/plain"),
        422: _html("A value is wrong; nothing saved"),
    },
)
async def save_preferences(request: web.Request) -> web.Response:
    runtime, account_id = await _subscriber_of(request)
    if account_id is None:
        return _invalid(_language(request), "preferences")
    if _cross_site(request, runtime):
        log.warning("cross-site preference change refused", account_id=account_id)
        return _refused(_language(request), "preferences")
    if request.content_length is None or request.content_length > FORM_LIMIT:
        return web.Response(status=413, text="the form is too large")
    form = await request.post()
    if not _form_token_valid(runtime, request.match_info["token"], form.get(CSRF_FIELD)):
        log.warning("preference change without the page's form token", account_id=account_id)
        return _refused(_language(request), "preferences")
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await subscriber_store.get(conn, account_id, lock=True)
        if subscriber is None:
            return _invalid(_language(request), "preferences")
        changed, problems = _changes(form, subscriber, runtime)
        offers = await consent_store.has_consent(conn, account_id)
        language = _language(request, changed.language or runtime.settings.defaults.language)
        words = TEXT[language]
        if problems:
            note = (
                f"<p><strong>{words['fix']}</strong></p><ul>"
                + "".join(f"<li>{html.escape(p)}</li>" for p in problems)
                + "</ul>"
            )
            body = _form(request, subscriber, runtime, offers, language, note)
            return _page(language, words["preferences"], body, status=422)
        saved = await subscriber_store.save_preferences(conn, changed)
        wants_offers = form.get("offers") == "yes"
        if wants_offers != offers:
            # The subscriber's own choice: the one source that may lift a suppression.
            await consent.decide(
                conn,
                account_id,
                [
                    saved.email,
                    *preferences_module.addresses_for(
                        Category.MARKETING, saved.preferences, saved.email
                    ),
                ],
                granted=wants_offers,
                source="subscriber",
                wording_version=OFFERS_WORDING,
                recorded_by=None,
            )
    log.info("preferences changed by the subscriber", account_id=account_id)
    note = f"<p><strong>{words['saved']}</strong></p>"
    body = _form(request, saved, runtime, wants_offers, language, note)
    return _page(language, words["preferences"], body)
