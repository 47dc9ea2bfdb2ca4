"""Subscriber pages reached from a signed link in an email: unsubscribe (RFC 8058).

GET shows a page with a button and changes nothing (mail scanners follow links); POST
unsubscribes: that is what a mail client's one-click unsubscribe sends
("List-Unsubscribe=One-Click"), and what the button sends. Takes effect at once.
"""

from __future__ import annotations

import html

import structlog
from aiohttp import web

from notifyd.http.runtime import RUNTIME
from notifyd.storage import consent as consent_store

log = structlog.get_logger(__name__)

TEXT = {
    "ro": {
        "title": "Dezabonare",
        "ask": "Nu mai doresc să primesc aceste mesaje (oferte și modificări de tarife).",
        "button": "Dezabonare",
        "done": "V-ați dezabonat. Nu veți mai primi oferte la această adresă.",
        "invalid": "Linkul nu este valid.",
    },
    "en": {
        "title": "Unsubscribe",
        "ask": "I no longer want to receive these messages (offers and tariff changes).",
        "button": "Unsubscribe",
        "done": "You are unsubscribed. This address will receive no more offers.",
        "invalid": "This link is not valid.",
    },
}


def _page(language: str, body: str, status: int = 200) -> web.Response:
    words = TEXT.get(language, TEXT["ro"])
    document = (
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{words['title']}</title></head>"
        f'<body style="font-family:Arial,sans-serif;max-width:40em;margin:2em auto;">'
        f"<h1>{words['title']}</h1>{body}</body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status)


def _language(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "ro"


async def unsubscribe_form(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    language = _language(request)
    words = TEXT[language]
    if runtime.links is None or runtime.links.read_unsubscribe(request.match_info["token"]) is None:
        return _page(language, f"<p>{words['invalid']}</p>", status=404)
    action = html.escape(request.path)
    form = (
        f"<p>{words['ask']}</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{words["button"]}</button></form>'
    )
    return _page(language, form)


async def unsubscribe(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    language = _language(request)
    found = runtime.links.read_unsubscribe(request.match_info["token"]) if runtime.links else None
    if found is None:
        return _page(language, f"<p>{TEXT[language]['invalid']}</p>", status=404)
    account_id, address = found
    async with runtime.pool.acquire() as conn, conn.transaction():
        await consent_store.record(
            conn,
            account_id,
            granted=False,
            source="unsubscribe-link",
            wording_version="list-unsubscribe",
            recorded_by=None,
        )
        await consent_store.suppress(conn, address, "unsubscribed by link")
    log.info("unsubscribed by link", account_id=account_id)
    return _page(language, f"<p>{TEXT[language]['done']}</p>")
