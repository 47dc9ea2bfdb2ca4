"""create_app(): routes, middlewares (client address, request id, JSON errors) and shared
state, for one listener's audience or both (http/listeners.py serves them).

The public app has the webhooks, the subscribers' pages and health; the admin app the admin
API, /metrics, health and the export's schema. Each serves its own /openapi.json, written
from its own routes, so the public document does not name the admin API. A path of the
other audience is not routed: 404 as any unknown path, revealing nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from notifyd import unstorable
from notifyd.http import health, openapi, proxies, reports, webhooks
from notifyd.http.admin import create_admin_app
from notifyd.http.errors import Problem, error_response
from notifyd.http.pages import preferences, renewal, shell, unsubscribe
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.unique_ids import new_id

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("X-Request-Id", "")
    request_id = given if 0 < len(given) <= 64 and given.isprintable() else new_id()
    # Set and reset by its token: `bound_contextvars` also copied the whole context to
    # save what it replaced, and unbound then bound again on the way out (5.7 -> 1.3 us a
    # request, docs/performance.md, "The intake's floor"). The same value is restored.
    bound = structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        try:
            response = await handler(request)
        except Problem as problem:
            response = problem.response()
        except web.HTTPException as error:
            # A 405 must say what the route takes (RFC 9110): its Allow stays on the answer.
            allow = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
            response = error_response(
                error.status, error.reason.lower().replace(" ", "_"), error.reason, None, allow
            )
        except Exception:
            # The route as declared, not the path: a subscriber page's path is its link.
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "(no route)"
            log.exception("unhandled error", method=request.method, route=route)
            response = error_response(500, "internal", "internal error; see the daemon log")
        response.headers["X-Request-Id"] = request_id
        # Every answer, not only the pages': an error or JSON body shown in a browser must
        # not be framed, sniffed into HTML or allowed to load anything either.
        response.headers["Content-Security-Policy"] = request.config_dict[RUNTIME].pages.policy
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
    finally:
        structlog.contextvars.reset_contextvars(**bound)


@web.middleware
async def refuse_unstorable_parameters(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """A path or query parameter with a NUL (or a lone surrogate) is a 422 naming it, for
    every route: such text is no id of anything, and PostgreSQL cannot even look it up."""
    refused = {
        name: wrong
        for name, value in (*request.match_info.items(), *request.query.items())
        if (wrong := unstorable.problem(value)) is not None
    }
    if refused:
        raise Problem(422, "invalid_request", "invalid parameters", refused)
    return await handler(request)


# The routes each audience reaches, in the order they are served.
PUBLIC_ROUTES = (
    webhooks.routes,
    reports.routes,
    health.routes,
    openapi.routes,
    unsubscribe.routes,
    preferences.routes,
    shell.routes,
    renewal.routes,
)
ADMIN_ROUTES = (health.routes, health.scrape, openapi.routes, openapi.schema_routes)


def create_app(runtime: Runtime, *, public: bool = True, admin: bool = True) -> web.Application:
    """The app of one listener: the public routes, the admin ones, or both (one listener
    for everything: [http.admin] shared = true)."""
    # Body size is enforced by the webhook handler against the reloadable limit.
    app = web.Application(
        middlewares=[proxies.real_client, request_context, refuse_unstorable_parameters],
        client_max_size=1024**3,
    )
    app[RUNTIME] = runtime
    wanted = (*(PUBLIC_ROUTES if public else ()), *(ADMIN_ROUTES if admin else ()))
    # Each module declares its routes with what the document says of them (operations.py).
    for routes in dict.fromkeys(wanted):
        routes.add_to(app)
    if admin:
        app.add_subapp("/v1/admin/", create_admin_app())
    return app
