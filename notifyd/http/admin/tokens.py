"""Admin bearer tokens: every call under /v1/admin/ needs one.

The config holds only SHA-256 digests (`[admin.tokens] name = "sha256:..."`), compared in
constant time, and every call is logged with the token's name. A token removed from the
config stops working at the next reload.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from notifyd.http.errors import Problem
from notifyd.http.runtime import RUNTIME
from notifyd.storage import db

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_NAME = web.RequestKey("admin_token", str)


def token_name(authorization: str, tokens: dict[str, bytes]) -> str | None:
    """The name of the configured token this header carries, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = hashlib.sha256(token.strip().encode()).digest()
    found = None
    # Every digest is compared, so the time taken says nothing about which one matched.
    for name, expected in tokens.items():
        if hmac.compare_digest(digest, expected):
            found = name
    return found


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    runtime = request.config_dict[RUNTIME]
    name = token_name(request.headers.get("Authorization", ""), dict(runtime.settings.admin.tokens))
    if name is None:
        log.warning("admin call refused", method=request.method, path=request.path)
        raise Problem(
            401,
            "unauthorized",
            "a valid admin bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="notifyd-admin"'},
        )
    request[TOKEN_NAME] = name
    log.info("admin call", token_name=name, method=request.method, path=request.path)
    try:
        return await handler(request)
    except db.UNAVAILABLE as error:
        raise Problem(
            503,
            "unavailable",
            f"the database cannot answer now ({type(error).__name__})",
            headers={"Retry-After": "5"},
        ) from None
