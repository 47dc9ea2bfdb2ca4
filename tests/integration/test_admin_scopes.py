"""Admin token scopes: every route declares one, a token without it is refused 403 naming
it, a token with it is let through, the old token form keeps every scope, an unknown scope
is a config error at its place in the file, and the OpenAPI document says each route's."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from notifyd import settings as settings_module
from notifyd.http.openapi import document
from notifyd.http.operations import Routes, served
from notifyd.settings import SCOPES
from tests.conftest import app_without_services, load_config, running_daemon, write_config
from tests.integration.admin_support import (
    AUDIT_TOKEN,
    BROADCAST_TOKEN,
    OPS_TOKEN,
    READ_TOKEN,
    admin_config,
    admin_routes,
    call,
    digest,
    scoped_routes,
)

# One token per scope, each in the table form with that scope only.
ONE_SCOPE = {scope: f"only-{scope}-token-{index}1f" for index, scope in enumerate(SCOPES)}


def one_scope_config(tmp_path: Path, database_url: str) -> dict[str, dict[str, object]]:
    config: dict[str, dict[str, object]] = admin_config(tmp_path, database_url, None)
    for scope, token in ONE_SCOPE.items():
        config[f"admin.tokens.only-{scope}"] = {"digest": digest(token), "scopes": [scope]}
    return config


def test_every_admin_route_declares_a_known_scope(tmp_path: Path) -> None:
    routes = scoped_routes(tmp_path)
    assert {(method, path) for method, path, _ in routes} == set(admin_routes())
    assert [route for route in routes if route[2] not in SCOPES] == []
    # Reading needs `read`, but for an export of everything held about an account, a right
    # of the subscriber's that is `privacy`'s; no change is allowed by `read`.
    assert {
        (path, scope) for method, path, scope in routes if scope != "read" and method == "GET"
    } == {("/v1/admin/subscribers/acc-1/export", "privacy")}
    assert "read" not in {scope for method, _, scope in routes if method != "GET"}


def test_an_admin_route_without_a_scope_cannot_be_declared() -> None:
    routes = Routes(admin=True)
    with pytest.raises(TypeError, match="declares its scope"):

        @routes.post("/forgotten", "A route someone added without a scope")
        async def forgotten(request: web.Request) -> web.Response:
            raise AssertionError("never served")


async def test_every_scoped_route_refuses_a_token_without_its_scope_and_accepts_one_with_it(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, one_scope_config(tmp_path, database_url))
    wrong: list[tuple[object, ...]] = []
    let_through = []
    async with running_daemon(settings) as daemon:
        for method, path, scope in scoped_routes(tmp_path):
            for held, token in ONE_SCOPE.items():
                status, body = await call(daemon, method, path, token=token, json={"x": 1})
                answer = (method, path, held, status)
                if held == scope:
                    let_through.append(answer)
                elif status != 403 or body["error"] != "forbidden":
                    wrong.append(answer)
                elif (
                    f'"{scope}" scope' not in body["detail"] or f"only-{held}" not in body["detail"]
                ):
                    wrong.append((*answer, body["detail"]))
    assert wrong == []
    # With its scope, each route answers as it would any token (a 404, a 422...), never 401/403.
    assert [answer for answer in let_through if answer[3] in (401, 403)] == []
    assert len(let_through) == len(scoped_routes(tmp_path)) >= 19


async def test_a_token_in_the_old_form_keeps_every_scope(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    assert all(token.every_scope for name, token in settings.admin.tokens.items() if name == "ops")
    answers = []
    async with running_daemon(settings) as daemon:
        for method, path, _ in scoped_routes(tmp_path):
            for token in (OPS_TOKEN, AUDIT_TOKEN):
                status, _ = await call(daemon, method, path, token=token, json={"x": 1})
                answers.append((method, path, status))
    assert [answer for answer in answers if answer[2] in (401, 403)] == []


async def test_a_scope_taken_away_at_reload_is_refused_from_then_on(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    settings = load_config(tmp_path, config)
    broadcast = "/v1/admin/broadcasts/00000000-0000-0000-0000-000000000000"
    async with running_daemon(settings) as daemon:
        before = await call(daemon, "GET", broadcast, token=READ_TOKEN)
        config["admin.tokens.reader"]["scopes"] = ["broadcasts"]
        write_config(settings.path, config)
        assert await daemon.daemon.reload()
        after = await call(daemon, "GET", broadcast, token=READ_TOKEN)
        cancel = await call(daemon, "DELETE", broadcast, token=READ_TOKEN)
        other = await call(daemon, "DELETE", broadcast, token=BROADCAST_TOKEN)
    assert before[0] == 404  # let through: no such broadcast
    assert (after[0], after[1]["error"]) == (403, "forbidden")
    assert '"read" scope' in after[1]["detail"]
    assert cancel[0] == other[0] == 404


def test_an_unknown_or_missing_scope_is_a_config_error_at_its_place(tmp_path: Path) -> None:
    config = admin_config(tmp_path, "postgresql://unused/db", None)
    config["admin.tokens.auditor"] = {"digest": digest("a"), "scopes": ["read", "raed"]}
    config["admin.tokens.nothing"] = {"digest": digest("b"), "scopes": []}
    config["admin.tokens.unsaid"] = {"digest": digest("c")}
    with pytest.raises(settings_module.ConfigError) as raised:
        load_config(tmp_path, config)
    assert dict(raised.value.problems) == {
        "[admin.tokens.auditor] scopes[1]": (
            "must be one of 'read', 'subscribers', 'broadcasts', 'privacy', got 'raed'"
        ),
        "[admin.tokens.nothing] scopes": (
            "must name at least one scope (a token that can do nothing)"
        ),
        "[admin.tokens.unsaid] scopes": "is required",
    }


async def test_a_reload_with_an_unknown_scope_is_refused_and_the_tokens_stay(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        config["admin.tokens.reader"]["scopes"] = ["everything"]
        write_config(settings.path, config)
        assert not await daemon.daemon.reload()
        still = await call(daemon, "GET", "/v1/admin/subscribers/acc-1", token=READ_TOKEN)
    assert still[0] == 404


def test_the_document_names_each_operations_scope_and_its_403(tmp_path: Path) -> None:
    app = app_without_services(tmp_path)
    paths = document(app)["paths"]
    wrong = []
    for path, operation in served(app):
        if not path.startswith("/v1/admin/"):
            continue
        scope = operation.scope
        described = paths[path][operation.method.lower()]
        if (
            described["security"] != [{"adminToken": [scope]}]
            or f"`{scope}` scope" not in described["description"]
            or f"`{scope}` scope" not in described["responses"]["403"]["description"]
        ):
            wrong.append((operation.method, path))
    assert wrong == []
    assert "scope" in document(app)["components"]["securitySchemes"]["adminToken"]["description"]
