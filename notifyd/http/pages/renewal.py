"""The page of a link that no longer opens (a preference link past [links]
preferences_days or revoked by the admin, an unsubscribe link past unsubscribe_days), and
the fresh preference link it offers to email: preferences.py and unsubscribe.py answer with
offer(); the button posts to /v1/links/{token}/renew, which answers at once, the same
whether or not anything will be sent, and then queues the email (intake/renewals.py).

One button, no address typed: the fresh link goes only to the address on file for the
link's account, so the page never shows an address, asks for none, and has nothing to
check a guess against; whoever holds an old link (a forwarded email) can at most have the
account's owner sent a link, a few times a day. The page's language is ?lang= or the
default, never the account's: it says nothing of the account either.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from notifyd.http.operations import Routes
from notifyd.http.pages import shell
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.intake import renewals
from notifyd.links import Unsubscribe
from notifyd.rules.links import preference_link_state, unsubscribe_link_opens
from notifyd.storage import links as link_store

log = structlog.get_logger(__name__)
routes = Routes()

WORDS: dict[str, dict[str, str]] = {
    "ro": {
        "title": "Linkul a expirat",
        "expired": "Acest link nu mai este valabil: a expirat sau a fost retras.",
        "offer": "Vă putem trimite prin email un link nou către preferințele dvs., la adresa "
        "contului.",
        "button": "Trimiteți-mi un link nou",
        "sent_title": "Link nou",
        "sent": "Dacă linkul aparține unui cont, un link nou este pe drum către adresa "
        "acestuia. Verificați-vă emailul în câteva minute.",
        "busy": "Prea multe cereri de la această adresă. Încercați din nou peste o oră.",
        "other": "English",
    },
    "en": {
        "title": "This link has expired",
        "expired": "This link no longer opens: it has expired or was withdrawn.",
        "offer": "We can email a fresh link to your preferences to the address of the account.",
        "button": "Email me a fresh link",
        "sent_title": "A fresh link",
        "sent": "If this link belongs to an account, a fresh link is on its way to its "
        "address. Check your email in a few minutes.",
        "busy": "Too many requests from this address. Try again in an hour.",
        "other": "Română",
    },
}


OFFER = shell.html_answer(
    "The link has expired or was revoked: a button to email a fresh one; or its account was "
    "erased, which the page says"
)


def _language(request: web.Request, runtime: Runtime) -> str:
    return shell.asked_language(request, runtime.settings.defaults.language)


def offer(request: web.Request, runtime: Runtime, token: str) -> web.Response:
    """410: the link no longer opens; a button to email a fresh one."""
    language = _language(request, runtime)
    words = WORDS[language]
    other = "en" if language == "ro" else "ro"
    return shell.page(
        runtime,
        "expired.html",
        language,
        words["title"],
        status=410,
        words=words,
        action=f"/v1/links/{token}/renew?lang={language}",
        switch={"lang": other, "name": words["other"]},
        form=shell.form_token(runtime, token),
    )


async def open_preferences(request: web.Request, runtime: Runtime) -> str | web.Response:
    """The account whose preference link this request carries, if the link opens; else the
    page to answer: not a link (404), or the offer of a fresh one (410)."""
    token = request.match_info["token"]
    link = runtime.links.read_preferences(token) if runtime.links else None
    if link is None:
        return shell.invalid(runtime, shell.asked_language(request), "preferences")
    now, days = runtime.clock(), runtime.settings.links.preferences_days
    if preference_link_state(link.issued, None, now, days) != "open":
        return offer(request, runtime, token)  # past its age: the same whoever it was for
    async with runtime.pool.acquire() as conn:
        revocation = await link_store.revocation(conn, link.account_id)
    if revocation is None:  # erased since the email left
        return shell.gone(runtime, shell.asked_language(request), "preferences")
    if preference_link_state(link.issued, revocation.since, now, days) != "open":
        return offer(request, runtime, token)
    return link.account_id


def unsubscribe_opens(runtime: Runtime, found: Unsubscribe) -> bool:
    return unsubscribe_link_opens(
        found.issued, runtime.clock(), runtime.settings.links.unsubscribe_days
    )


def _account_of(runtime: Runtime, token: str) -> str | None:
    """The account of any link of ours, whatever its age: a preference or unsubscribe one."""
    if runtime.links is None:
        return None
    preferences = runtime.links.read_preferences(token)
    if preferences is not None:
        return preferences.account_id
    unsubscribe = runtime.links.read_unsubscribe(token)
    return None if unsubscribe is None else unsubscribe.account_id


@routes.post(
    "/v1/links/{token}/renew",
    "Email a fresh preference link to the address of a link's account",
    description="The button of the page an expired or revoked link shows. The answer is "
    "the same whether or not an email was sent (unknown account, enough of them today).",
    other_bodies={
        "application/x-www-form-urlencoded": {
            "type": "object",
            "properties": {shell.CSRF_FIELD: {"type": "string"}},
            "required": [shell.CSRF_FIELD],
        }
    },
    answers={
        200: shell.html_answer("Sent, if the link's account is known and asked few enough"),
        403: shell.html_answer("From another site, or without the page's form token"),
        404: shell.NOT_A_LINK,
        429: shell.html_answer("Too many asks from this client address in the last hour"),
    },
)
async def renew(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    token = request.match_info["token"]
    language = _language(request, runtime)
    words = WORDS[language]
    account_id = _account_of(runtime, token)
    if account_id is None:
        return shell.invalid(runtime, language, "preferences")
    form = await shell.read_form(request)
    given = form.get(shell.CSRF_FIELD) if form is not None else None
    if shell.cross_site(request, runtime) or not shell.form_token_valid(runtime, token, given):
        log.warning("fresh link asked for from outside its page", account_id=account_id)
        return shell.refused(runtime, language, "preferences")
    limit = runtime.settings.links.renewals_per_client_per_hour
    if not runtime.renewal_asks.allow(request.remote or "", limit):
        log.warning("fresh link refused: too many asks from one client")
        return shell.message(
            runtime, language, words["sent_title"], [words["busy"]], status=429, switch=True
        )
    # Queued after the answer: its time is the same whether the account exists or not.
    runtime.spawn(_queue_fresh_link(runtime, account_id))
    return shell.message(runtime, language, words["sent_title"], [words["sent"]], switch=True)


async def _queue_fresh_link(runtime: Runtime, account_id: str) -> None:
    try:
        if await renewals.renew(runtime.pool, runtime.settings, account_id, runtime.clock()):
            runtime.on_queued()
    except Exception:  # no request waits for it to say so: the log does
        log.exception("fresh preference link not queued", account_id=account_id)
