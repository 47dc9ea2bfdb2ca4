"""Admin bearer tokens and their scopes: every call under /v1/admin/ needs a token, and one
that grants the scope its route declares (http/operations.py, `scope=`).

The config holds only SHA-256 digests (`[admin.tokens.<name>] digest = "sha256:..."` with
`scopes`, or the old `<name> = "sha256:..."` with every scope: settings/admin.py), compared
in constant time, and every call is logged with the token's name. A token removed from the
config stops working at the next reload, and so does a scope taken from it. Its neighbour
recording.py writes the audit row of each change a call makes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from notifyd.http.errors import Problem
from notifyd.http.operations import operation_of
from notifyd.http.runtime import RUNTIME
from notifyd.settings import AdminToken
from notifyd.storage import db

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN_NAME = web.RequestKey("admin_token", str)


def token_name(authorization: str, tokens: Mapping[str, AdminToken]) -> str | None:
    """The name of the configured token this header carries, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = hashlib.sha256(token.strip().encode()).digest()
    found = None
    # Every digest is compared, so the time taken says nothing about which one matched.
    for name, expected in tokens.items():
        if hmac.compare_digest(digest, expected.digest):
            found = name
    return found


def _check_scope(request: web.Request, name: str, token: AdminToken) -> str:
    """The route as declared (never the path, which may hold an address); a 403 naming
    the scope when the token lacks it."""
    found = operation_of(request)
    if found is None:
        return "(no such route)"  # answered 404 or 405 by the router
    route, operation = found
    if operation.scope is not None and not token.grants(operation.scope):
        log.warning(
            "admin call refused: scope",
            token_name=name,
            method=request.method,
            route=route,
            scope=operation.scope,
        )
        has = ", ".join(token.scopes or ()) or "none"
        raise Problem(
            403,
            "forbidden",
            f'this call needs a token with the "{operation.scope}" scope; the token '
            f'"{name}" has: {has}',
        )
    return route


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    runtime = request.config_dict[RUNTIME]
    tokens = runtime.settings.admin.tokens
    name = token_name(request.headers.get("Authorization", ""), tokens)
    if name is None:
        log.warning("admin call refused", method=request.method, path=request.path)
        raise Problem(
            401,
            "unauthorized",
            "a valid admin bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="notifyd-admin"'},
        )
    request[TOKEN_NAME] = name
    route = _check_scope(request, name, tokens[name])
    log.info("admin call", token_name=name, method=request.method, route=route)
    try:
        return await handler(request)
    except db.UNAVAILABLE as error:
        raise Problem(
            503,
            "unavailable",
            f"the database cannot answer now ({type(error).__name__})",
            headers={"Retry-After": "5"},
        ) from None
