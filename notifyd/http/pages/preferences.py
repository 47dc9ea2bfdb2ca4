"""The preference page: GET shows the subscriber's effective choices in a form; POST saves
what they changed (a value submitted unchanged stays "follow the default")."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from notifyd.catalogue.events import Category
from notifyd.catalogue.locale import LANGUAGES
from notifyd.http.operations import Answer, Routes
from notifyd.http.pages import renewal, shell
from notifyd.http.pages.preference_form import (
    CHOSEN_BY_MODE,
    changed_names,
    changes,
    changes_in_words,
    form_context,
    problems_in_words,
)
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.intake import consent
from notifyd.model import MODES, Subscriber
from notifyd.rules import preferences as preferences_module
from notifyd.storage import audit as audit_store
from notifyd.storage import consent as consent_store
from notifyd.storage import subscribers as subscriber_store
from notifyd.storage.db import Conn

log = structlog.get_logger(__name__)
routes = Routes()
# The preference form as a browser sends it (preferences.html writes it, preference_form.py
# reads it).
PREFERENCE_FORM = {
    "type": "object",
    "properties": {
        **{
            f"mode.{category}": {"type": "string", "enum": list(MODES)}
            for category in CHOSEN_BY_MODE
        },
        **{
            f"addresses.{category}": {
                "type": "string",
                "description": "Addresses separated by commas, replacing the category's own; "
                "empty: unchanged",
            }
            for category in CHOSEN_BY_MODE
        },
        **{
            f"addresses.{category}.reset": {
                "type": "string",
                "enum": ["yes"],
                "description": "The category's notices go to the account's address again",
            }
            for category in CHOSEN_BY_MODE
        },
        "quiet_from": {"type": "string", "description": "HH:MM; empty with quiet_to: none"},
        "quiet_to": {"type": "string", "description": "HH:MM"},
        "quiet_hours": {"type": "string", "description": "Older pages' one field: 22:00-07:00"},
        "digest_time": {"type": "string"},
        "timezone": {"type": "string", "description": "An IANA zone, or a city's name"},
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "voicemail_audio": {"type": "string", "enum": ["on", "off"]},
        "offers": {"type": "string", "enum": ["yes"]},
        shell.CSRF_FIELD: {
            "type": "string",
            "description": "From the page's form: proves the POST came from it",
        },
    },
    "required": [shell.CSRF_FIELD],
}


def _page(
    request: web.Request,
    runtime: Runtime,
    context: dict[str, Any],
    language: str,
    status: int = 200,
) -> web.Response:
    return shell.page(
        runtime,
        "preferences.html",
        language,
        shell.TEXT[language]["preferences"],
        status=status,
        action=request.path,
        **context,
        form=shell.form_token(runtime, request.match_info["token"]),
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
        if subscriber is None:  # erased since the link opened
            return shell.gone(runtime, shell.asked_language(request), "preferences")
        offers = await consent_store.has_consent(conn, account_id)
    language = shell.asked_language(
        request, subscriber.language or runtime.settings.defaults.language
    )
    context = form_context(subscriber, runtime.settings, offers, language)
    return _page(request, runtime, context, language)


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
        return shell.refused(runtime, shell.asked_language(request), "preferences")
    if request.content_length is None or request.content_length > shell.FORM_LIMIT:
        return web.Response(status=413, text="the form is too large")
    form = await shell.read_form(request)
    given = form.get(shell.CSRF_FIELD) if form is not None else None
    if form is None or not shell.form_token_valid(runtime, request.match_info["token"], given):
        log.warning("preference change without the page's form token", account_id=account_id)
        return shell.refused(runtime, shell.asked_language(request), "preferences")
    async with runtime.pool.acquire() as conn, conn.transaction():
        subscriber = await subscriber_store.get(conn, account_id, lock=True)
        if subscriber is None:  # erased since the link opened
            return shell.gone(runtime, shell.asked_language(request), "preferences")
        changed, problems = changes(form, subscriber, runtime.settings)
        offers = await consent_store.has_consent(conn, account_id)
        language = shell.asked_language(
            request, changed.language or runtime.settings.defaults.language
        )
        if problems:
            context = form_context(subscriber, runtime.settings, offers, language)
            context["problems"] = problems_in_words(problems, language)
            return _page(request, runtime, context, language, status=422)
        saved = await subscriber_store.save_preferences(
            conn, changed, before=subscriber, erasure_key=runtime.erasure_key
        )
        await audit_store.record(
            conn,
            audit_store.SUBSCRIBER_LINK,
            "preferences.changed",
            account_id,
            {"fields": changed_names(subscriber, saved), "via": "preferences"},
        )
        wants_offers = form.get("offers") == "yes"
        if wants_offers != offers:
            await _record_offers_choice(conn, saved, granted=wants_offers)
    log.info("preferences changed by the subscriber", account_id=account_id)
    before = form_context(subscriber, runtime.settings, offers, language)
    after = form_context(saved, runtime.settings, wants_offers, language)
    return shell.page(
        runtime,
        "saved.html",
        language,
        shell.TEXT[language]["saved"],
        changes=changes_in_words(before, after, language),
        back=request.path,
    )


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
