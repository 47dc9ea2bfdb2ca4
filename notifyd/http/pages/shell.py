"""What the subscriber's pages share: a page from its template (views.py renders it, with the
[branding] layout), the stylesheet's route, the page's language, the browser defences (CSP,
the form token, the cross-site check) and the words in both languages."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy
from yarl import URL

from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.operations import Answer, Routes
from notifyd.http.pages import views
from notifyd.http.pages.words import LANGUAGE_NAMES
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.storage import subscribers as subscriber_store

log = structlog.get_logger(__name__)
routes = Routes()

# The wording a subscriber agrees to on the preference page, recorded with their consent.
OFFERS_WORDING = "preferences-page-1"
# The preference form is a few hundred bytes; anything much larger is not from it.
FORM_LIMIT = 16 * 1024
# Named in the forms of both pages: proves a POST came from the page of that link.
CSRF_FIELD = "form_token"

# Sent with every answer of the app (JSON ones too: a browser shown one runs nothing); the
# pages' answers carry the current config's (views.Pages.policy: the logo's origin added).
CONTENT_SECURITY_POLICY = views.CONTENT_SECURITY_POLICY


def html_answer(description: str) -> Answer:
    """An answer of a page route, as the OpenAPI document tells it."""
    return Answer(description, media_type="text/html")


NOT_A_LINK = html_answer("Not a valid link")

CATEGORY_NAMES = {
    "ro": {
        "calls": "Apeluri nepreluate",
        "voicemail": "Mesaje vocale",
        "fax": "Faxuri",
        "billing": "Plăți și alimentări ale contului",
        "low_credit": "Credit scăzut",
        "statement": "Situația lunară a creditului",
        "marketing": "Oferte și modificări de tarife",
    },
    "en": {
        "calls": "Missed calls",
        "voicemail": "Voicemail",
        "fax": "Faxes",
        "billing": "Payments and top-ups",
        "low_credit": "Low credit",
        "statement": "Monthly credit statement",
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
        "invalid": "Linkul nu este valid. Deschideți-l din nou din email, întreg: un link "
        "copiat pe bucăți nu se deschide.",
        "refused": "Cererea nu vine din această pagină. Deschideți din nou linkul din email.",
        "gone": "Acest cont nu mai există: datele lui au fost șterse. Nu mai sunt preferințe de "
        "setat și nu se mai trimit emailuri pentru el.",
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
        "invalid": "This link is not valid. Open it again from the email, whole: a link copied "
        "in pieces does not open.",
        "refused": "This request did not come from this page. Open the link in the email again.",
        "gone": "This account no longer exists: its data was erased. There are no preferences "
        "left to set, and no more emails are sent for it.",
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


# The referrer only to this site; the Origin of the page's own POSTs is then its own.
REFERRER_POLICY = "same-origin"


def page(
    runtime: Runtime,
    template: str,
    language: str,
    title: str,
    *,
    status: int = 200,
    **context: Any,
) -> web.Response:
    """A page from its template (views.py), with the headers every page needs."""
    document = runtime.pages.render(template, language, title, **context)
    # The token in the address is the credential: keep the page out of caches, and out of
    # the referrer of any request to another site. Not "no-referrer": under it a browser
    # sends "Origin: null" with the page's own form POST (Fetch, "serialize a request
    # origin"), which cross_site() must refuse, so no button worked in a real browser.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": REFERRER_POLICY}
    return web.Response(text=document, content_type="text/html", status=status, headers=headers)


def message(
    runtime: Runtime,
    language: str,
    title: str,
    paragraphs: list[str],
    status: int = 200,
    switch: bool = False,
) -> web.Response:
    """A page that only says something; `switch` links the same page in the other language."""
    other = "en" if language == "ro" else "ro"
    shown = {"lang": other, "name": LANGUAGE_NAMES[other]} if switch else None
    return page(
        runtime, "message.html", language, title, status=status, paragraphs=paragraphs, switch=shown
    )


@routes.get(
    views.STYLE_PATH,
    "The subscriber pages' stylesheet, in the colours of [branding]",
    answers={200: Answer("The stylesheet", media_type="text/css")},
)
async def stylesheet(request: web.Request) -> web.Response:
    pages = request.app[RUNTIME].pages
    # Pages link it with ?v=<hash of its content>: a day's caching never shows a stale one.
    headers = {"Cache-Control": "public, max-age=86400", "ETag": f'"{pages.style_version}"'}
    if request.headers.get("If-None-Match") == headers["ETag"]:
        return web.Response(status=304, headers=headers)
    return web.Response(
        text=pages.stylesheet, content_type="text/css", charset="utf-8", headers=headers
    )


def asked_language(request: web.Request, fallback: str = "ro") -> str:
    asked = request.query.get("lang")
    return asked if asked in LANGUAGES else fallback


def invalid(runtime: Runtime, language: str, heading: str) -> web.Response:
    """A link that is not valid, under the heading of the page it was for ("title" for
    unsubscribe, "preferences")."""
    words = TEXT[language]
    return message(runtime, language, words[heading], [words["invalid"]], status=404)


def gone(runtime: Runtime, language: str, heading: str) -> web.Response:
    """A link that is whole and was ours, for an account erased since (410): saying the link
    is not valid would send the subscriber to open it again and again."""
    words = TEXT[language]
    return message(runtime, language, words[heading], [words["gone"]], status=410)


def refused(runtime: Runtime, language: str, heading: str) -> web.Response:
    words = TEXT[language]
    return message(runtime, language, words[heading], [words["refused"]], status=403)


def cross_site(request: web.Request, runtime: Runtime) -> bool:
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


def has_browser_headers(request: web.Request) -> bool:
    return "Origin" in request.headers or "Sec-Fetch-Site" in request.headers


# What aiohttp's form reader raises on a body that is no form it can read: an unknown
# charset (LookupError), broken multipart (ValueError), an unknown transfer encoding
# (RuntimeError), too many parts or headers (HTTPException, HttpProcessingError).
_UNREADABLE = (
    ValueError,
    LookupError,
    RuntimeError,
    TypeError,
    HttpProcessingError,
    web.HTTPException,
)


async def read_form(request: web.Request) -> MultiDictProxy[str] | None:
    """The text fields of a POST of the pages' form size; None when the body is larger or
    is no form aiohttp can read. Our pages send a small urlencoded form, so such a body did
    not come from them: it is answered as a form without the page's token (never a 500,
    whose log line would hold the link). A file sent where text belongs is left out."""
    if request.content_length is None or request.content_length > FORM_LIMIT:
        return None
    try:
        form = await request.post()
    except _UNREADABLE as error:
        log.info("a page's POST is no readable form", error=type(error).__name__)
        return None
    return MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))


def form_token(runtime: Runtime, link_token: str) -> dict[str, str]:
    """The hidden field of a page's form, as its template writes it."""
    assert runtime.links is not None  # the page of a valid link
    return {"field": CSRF_FIELD, "token": runtime.links.form_token(link_token)}


def form_token_valid(runtime: Runtime, link_token: str, given: object) -> bool:
    return (
        runtime.links is not None
        and isinstance(given, str)
        and runtime.links.form_token_valid(link_token, given)
    )


# -- unsubscribe ------------------------------------------------------------------------------


def topic_name(topic: str, language: str) -> str:
    return CATEGORY_NAMES[language].get(topic, topic)


async def their_language(request: web.Request, runtime: Runtime, account_id: str) -> str:
    """?lang= if given, else the subscriber's language, else the default."""
    async with runtime.pool.acquire() as conn:
        subscriber = await subscriber_store.get(conn, account_id)
    chosen = subscriber.language if subscriber else None
    return asked_language(request, chosen or runtime.settings.defaults.language)
