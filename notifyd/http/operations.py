"""Routes declared with what the OpenAPI document says of them.

A module declares each handler on its `Routes` (as aiohttp's RouteTableDef does): method,
path, a summary, the models of the request (path parameters, query, body) and the answers
it gives; an admin route also the token scope it needs (`scope="read"`) and, if it changes
data, what the audit trail calls the change (`action="subscriber.changed"`).
`Routes.add_to(app)` serves them and keeps each route's `Operation` in the app, where
openapi.py finds it while walking the router: the document is written from the routes
served and the models that read and write them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from notifyd.http.errors import Error
from notifyd.settings import SCOPES, Scope

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class Answer:
    """One documented answer: a JSON body written from `body`, a body of another
    `media_type` (a page, metrics), or no body at all."""

    description: str
    body: type[BaseModel] | None = None
    media_type: str | None = "application/json"


def error(description: str) -> Answer:
    """An error answer: its body is an `Error` (http/errors.py)."""
    return Answer(description, Error)


@dataclass(frozen=True)
class Operation:
    method: str
    handler: Handler
    summary: str
    answers: Mapping[int, Answer]
    description: str | None = None
    # The JSON request body: a model, or any type pydantic has a schema for (a union).
    body: Any = None
    # Bodies of other media types (CSV, a form), as JSON schemas.
    other_bodies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    body_required: bool = True
    # Models of the path parameters and of the query; a path parameter without one is text.
    path_parameters: type[BaseModel] | None = None
    query_parameters: type[BaseModel] | None = None
    headers: tuple[str, ...] = ()
    # Needs an admin bearer token (http/admin/tokens.py) that grants this scope.
    admin: bool = False
    scope: Scope | None = None
    # What the audit trail calls a change this admin route makes (http/admin/recording.py):
    # "subscriber.changed"; undeclared, "<method> <path>".
    action: str | None = None

    def every_answer(self, path: str) -> dict[int, Answer]:
        """The answers declared, with those every operation of its kind gives (an error
        answer each) unless it declares them itself."""
        answers = dict(self.answers)
        if self.body is not None:
            answers.setdefault(400, error("Not JSON"))
            answers.setdefault(413, error("The body is over 1 MiB"))
            answers.setdefault(422, error("Invalid fields; `fields` names each"))
        if self.admin:
            # The admin app's middleware (http/admin/tokens.py).
            answers.setdefault(401, error("No valid admin token"))
            answers.setdefault(403, error(f"The token lacks the `{self.scope}` scope"))
            answers.setdefault(503, error("The database cannot answer now; retry"))
        if "{" in path or self.query_parameters is not None:
            # A path or query parameter holding a NUL is refused (a middleware in app.py).
            answers.setdefault(422, error("A parameter is invalid (or holds a NUL character)"))
        return answers


OPERATIONS = web.AppKey("operations", dict[tuple[str, Handler], Operation])


class Routes:
    """The routes of one module, each with its Operation."""

    def __init__(self, *, admin: bool = False) -> None:
        self._admin = admin
        self._declared: list[tuple[str, Operation, Handler | None]] = []

    def get(self, path: str, summary: str, **details: Any) -> Callable[[H], H]:
        return self._route("GET", path, summary, details)

    def put(self, path: str, summary: str, **details: Any) -> Callable[[H], H]:
        return self._route("PUT", path, summary, details)

    def post(self, path: str, summary: str, **details: Any) -> Callable[[H], H]:
        return self._route("POST", path, summary, details)

    def patch(self, path: str, summary: str, **details: Any) -> Callable[[H], H]:
        return self._route("PATCH", path, summary, details)

    def delete(self, path: str, summary: str, **details: Any) -> Callable[[H], H]:
        return self._route("DELETE", path, summary, details)

    def _route(
        self, method: str, path: str, summary: str, details: dict[str, Any]
    ) -> Callable[[H], H]:
        expect_handler = details.pop("expect_handler", None)

        if self._admin and details.get("scope") not in SCOPES:
            # At import: an admin route without a scope would be open to every token.
            raise TypeError(f"{method} {path}: an admin route declares its scope, one of {SCOPES}")

        def declare(handler: H) -> H:
            operation = Operation(method, handler, summary, admin=self._admin, **details)
            self._declared.append((path, operation, expect_handler))
            return handler

        return declare

    def add_to(self, app: web.Application) -> None:
        """Serve these routes in `app` (in the order they were declared)."""
        operations = app.setdefault(OPERATIONS, {})
        for path, operation, expect_handler in self._declared:
            if operation.method == "GET":
                # HEAD too, as add_get always did.
                app.router.add_get(path, operation.handler)
            else:
                app.router.add_route(
                    operation.method, path, operation.handler, expect_handler=expect_handler
                )
            operations[(operation.method, operation.handler)] = operation


def served(app: web.Application) -> Iterator[tuple[str, Operation]]:
    """(path, operation) of every route `app` and its sub-apps serve, in the router's order.
    A route served without an Operation is an error: it would be missing from the document."""
    operations = app.get(OPERATIONS, {})
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            yield from served(resource.get_info()["app"])
            continue
        for route in resource:
            if route.method == "HEAD":
                continue
            operation = operations.get((route.method, route.handler))
            if operation is None:
                raise LookupError(f"{route.method} {resource.canonical} has no Operation")
            # A sub-app's resources already carry its prefix.
            yield resource.canonical, operation


def operation_of(request: web.Request) -> tuple[str, Operation] | None:
    """The path as declared and the Operation of the route serving `request` (in a sub-app's
    middleware: the sub-app's routes); None when no route matched (a 404 or 405)."""
    route = request.match_info.route
    method = "GET" if request.method == "HEAD" else request.method
    operation = request.app.get(OPERATIONS, {}).get((method, route.handler))
    if operation is None or route.resource is None:
        return None
    return route.resource.canonical, operation
