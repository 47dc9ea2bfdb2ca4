"""Unsubscribe (RFC 8058): GET shows a button and changes nothing (mail scanners follow
links); POST unsubscribes, from the button or a mail client's one-click request."""

from __future__ import annotations

from dataclasses import replace

import structlog
from aiohttp import web

from notifyd.http.operations import Routes
from notifyd.http.pages import renewal, shell
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.intake import consent
from notifyd.links import MARKETING, Unsubscribe
from notifyd.rules.preferences import CONFIGURABLE
from notifyd.storage import audit as audit_store
from notifyd.storage import erasure as erasure_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)
routes = Routes()


@routes.get(
    "/v1/unsubscribe/{token}",
    "The unsubscribe page of a signed link (changes nothing)",
    answers={
        200: shell.html_answer("A page with a button"),
        404: shell.NOT_A_LINK,
        410: renewal.OFFER,
    },
)
async def unsubscribe_form(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    token = request.match_info["token"]
    found = runtime.links.read_unsubscribe(token) if runtime.links else None
    if found is None:
        return shell.invalid(runtime, shell.asked_language(request), "title")
    if not renewal.unsubscribe_opens(runtime, found):
        return renewal.offer(request, runtime, token)
    language = await shell.their_language(request, runtime, found.account_id)
    words = shell.TEXT[language]
    ask = (
        words["ask"]
        if found.topic == MARKETING
        else words["ask_digest"].format(category=shell.topic_name(found.topic, language))
    )
    if found.from_notice:
        ask = category_off_words(found.topic, language)[0]
    return shell.page(
        runtime,
        "unsubscribe.html",
        language,
        words["title"],
        ask=ask,
        action=request.path,
        button=words["button"],
        form=shell.form_token(runtime, token),
    )


@routes.post(
    "/v1/unsubscribe/{token}",
    "Unsubscribe at once (RFC 8058 one-click, or the page's button)",
    description="A mail provider's one-click POST carries no Origin and no form token; a "
    "browser's must come from the page, with its form_token.",
    answers={
        200: shell.html_answer("Unsubscribed"),
        403: shell.html_answer(
            "From another site, or a browser's POST without the page's form token; nothing changed"
        ),
        404: shell.NOT_A_LINK,
        410: renewal.OFFER,
    },
)
async def unsubscribe(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    token = request.match_info["token"]
    found = runtime.links.read_unsubscribe(token) if runtime.links else None
    if found is None:
        return shell.invalid(runtime, shell.asked_language(request), "title")
    if not renewal.unsubscribe_opens(runtime, found):
        return renewal.offer(request, runtime, token)  # past its lifetime: nothing changed
    language = await shell.their_language(request, runtime, found.account_id)
    words = shell.TEXT[language]
    if shell.cross_site(request, runtime):
        log.warning("cross-site unsubscribe refused", account_id=found.account_id)
        return shell.refused(runtime, language, "title")
    # Read only a form of the page's size: a one-click POST needs no body to be taken, as
    # before forms had tokens (RFC 8058 fixes what it sends, not how it is framed).
    form = await shell.read_form(request)
    given = form.get(shell.CSRF_FIELD) if form is not None else None
    # The page's own button sends its form token; a mail provider's one-click POST has
    # none, and no browser headers either. A browser's POST without it is not from us.
    from_browser = given is not None or shell.has_browser_headers(request)
    if from_browser and not shell.form_token_valid(runtime, token, given):
        log.warning("unsubscribe without the page's form token", account_id=found.account_id)
        return shell.refused(runtime, language, "title")
    async with runtime.pool.acquire() as conn, conn.transaction():
        action, detail = await _apply(conn, runtime, found)
        if action is not None:
            await audit_store.record(
                conn,
                audit_store.SUBSCRIBER_LINK,
                action,
                found.account_id,
                {**detail, "via": "unsubscribe"},
            )
    if found.topic == MARKETING:
        done = words["done"]
    else:
        done = words["done_digest"].format(category=shell.topic_name(found.topic, language))
        if found.from_notice:
            done = category_off_words(found.topic, language)[1]
    log.info("unsubscribed by link", account_id=found.account_id, topic=found.topic)
    return shell.message(runtime, language, words["title"], [done])


async def _apply(
    conn: Conn, runtime: Runtime, found: Unsubscribe
) -> tuple[str | None, dict[str, list[str]]]:
    """What the link stops, stopped: the audit action and detail to record, or None when
    nothing of the account changed."""
    subscriber = await subscriber_store.get(conn, found.account_id, lock=True)
    if subscriber is None:
        # The account was erased (or purged) since the email left: an old offer's
        # one-click must not bring its address back in clear nor start a consent
        # history again. The address stays off marketing as a keyed hash only.
        if found.topic == MARKETING:
            await erasure_store.remember(conn, runtime.erasure_key, [found.address])
        return None, {}
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
        return audit_store.consent_action(granted=False), {}
    # From a digest or a notice: that category's notices stop (the preference page turns
    # them back on).
    if found.topic not in CONFIGURABLE:
        return None, {}
    modes = {**subscriber.preferences.modes, found.topic: "off"}
    await subscriber_store.save_preferences(
        conn,
        replace(subscriber, preferences=replace(subscriber.preferences, modes=modes)),
        before=subscriber,
        erasure_key=runtime.erasure_key,
    )
    return "preferences.changed", {"fields": [f"modes.{found.topic}"]}


# What a notice's one-click link stops (links.Links.category_off_url), as the button page
# asks it and the page after says it; a category not named here is named by its title.
STOPPED_EMAILS = {
    "ro": {
        "calls": "emailuri despre apeluri nepreluate",
        "voicemail": "emailuri despre mesaje vocale",
        "fax": "emailuri despre faxuri",
        "billing": "emailuri despre plăți și alimentări ale contului",
        "low_credit": "avertizări de credit scăzut",
        "statement": "situația lunară a creditului",
    },
    "en": {
        "calls": "missed-call emails",
        "voicemail": "voicemail emails",
        "fax": "fax emails",
        "billing": "payment and top-up emails",
        "low_credit": "low-credit warnings",
        "statement": "monthly credit statements",
    },
}
CATEGORY_OFF_TEXT = {
    "ro": (
        "Nu mai doresc să primesc {stopped}.",
        "Gata. Nu veți mai primi {stopped}. Le puteți reactiva din preferințele de notificare.",
    ),
    "en": (
        "I no longer want to receive {stopped}.",
        "Done. You will no longer receive {stopped}. You can turn them back on in your "
        "notification preferences.",
    ),
}


def category_off_words(category: str, language: str) -> tuple[str, str]:
    """The button page's question and the answer after, for a category-off link."""
    stopped = STOPPED_EMAILS[language].get(category) or shell.topic_name(category, language)
    ask, done = CATEGORY_OFF_TEXT[language]
    return ask.format(stopped=stopped), done.format(stopped=stopped)


# -- preferences ------------------------------------------------------------------------------
