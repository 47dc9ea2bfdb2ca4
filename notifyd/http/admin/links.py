"""/v1/admin/subscribers/{account_id}/links/revoke: the account's preference links already
sent stop opening (a forwarded email, a shared mailbox); their page offers to email a fresh
one to the account's address (http/pages/renewal.py). Unsubscribe links keep opening:
unsubscribing harms no one, and mail providers act on old messages."""

from __future__ import annotations

import structlog
from aiohttp import web
from pydantic import Field

from notifyd.http.admin.subscribers import no_subscriber
from notifyd.http.admin.tokens import TOKEN_NAME
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME
from notifyd.http.validation import Reply, Timestamp, respond
from notifyd.storage import links as link_store

log = structlog.get_logger(__name__)

routes = Routes(admin=True)


class LinksRevoked(Reply):
    account_id: str
    revoked_before: Timestamp = Field(
        description="Preference links made before this moment no longer open; those of the "
        "emails sent after it do"
    )


@routes.post(
    "/subscribers/{account_id}/links/revoke",
    "Revoke the account's preference links already sent",
    scope="subscribers",
    action="links.revoked",
    description="Each one then shows a page offering to email a fresh link to the account's "
    "address. Unsubscribe links are not revoked.",
    body_required=False,
    answers={200: Answer("Revoked", LinksRevoked), 404: error("No such subscriber")},
)
async def revoke_links(request: web.Request) -> web.Response:
    runtime = request.config_dict[RUNTIME]
    account_id = request.match_info["account_id"]
    async with runtime.pool.acquire() as conn:
        revoked = await link_store.revoke(conn, account_id, runtime.clock())
    if revoked is None:
        raise no_subscriber(account_id)
    log.info("preference links revoked", account_id=account_id, token_name=request[TOKEN_NAME])
    return respond(LinksRevoked(account_id=account_id, revoked_before=revoked))
