"""The admin API as the tests call it: its tokens, a config that accepts them, and one call.

OPS_TOKEN and AUDIT_TOKEN are written in the old form (every scope); READ_TOKEN and
BROADCAST_TOKEN in the table form, with the one scope each is named after."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from notifyd.http.admin import create_admin_app
from notifyd.http.operations import served
from tests.conftest import Running, app_without_services, base_config

OPS_TOKEN = "ops-token-7c1f0e9d2b"
AUDIT_TOKEN = "audit-token-55aa12"
READ_TOKEN = "read-token-0b3e41"
BROADCAST_TOKEN = "broadcast-token-9d2c77"


def digest(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def admin_config(tmp_path: Path, database_url: str, smtp_port: int | None) -> dict[str, Any]:
    config = base_config(tmp_path, database_url, smtp_port)
    config["admin.tokens"] = {"ops": digest(OPS_TOKEN), "audit": digest(AUDIT_TOKEN)}
    config["admin.tokens.reader"] = {"digest": digest(READ_TOKEN), "scopes": ["read"]}
    config["admin.tokens.broadcaster"] = {
        "digest": digest(BROADCAST_TOKEN),
        "scopes": ["broadcasts"],
    }
    return config


async def call(
    daemon: Running,
    method: str,
    path: str,
    token: str | None = OPS_TOKEN,
    json: object | None = None,
    data: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with daemon.session.request(
        method, f"{daemon.admin_url}{path}", json=json, data=data, headers=headers
    ) as response:
        return response.status, await response.json()


# A value for each parameter of the admin routes' paths, to call every route.
PLACEHOLDERS = {
    "account_id": "acc-1",
    "notice_id": "00000000-0000-0000-0000-000000000000",
    "event_id": "00000000-0000-0000-0000-000000000000",
    "broadcast_id": "00000000-0000-0000-0000-000000000000",
    "address": "a@b.example",
}


def admin_routes() -> list[tuple[str, str]]:
    """Every admin route the app serves (taken from the router, so a new route is covered
    the day it is added)."""
    routes = set()
    for route in create_admin_app().router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        path = "/v1/admin" + route.resource.canonical if route.resource else ""
        routes.add((route.method, path.format(**PLACEHOLDERS)))
    return sorted(routes)


def scoped_routes(tmp_path: Path) -> list[tuple[str, str, str | None]]:
    """(method, path with placeholders filled, the scope it declares) of every admin route,
    from the app's router and the Operations it serves."""
    return sorted(
        (operation.method, path.format(**PLACEHOLDERS), operation.scope)
        for path, operation in served(app_without_services(tmp_path))
        if path.startswith("/v1/admin/")
    )


async def post_import(daemon: Running, body: bytes, content_type: str) -> tuple[int, Any]:
    async with daemon.session.post(
        f"{daemon.admin_url}/v1/admin/subscribers/import",
        data=body,
        headers={"Authorization": f"Bearer {OPS_TOKEN}", "Content-Type": content_type},
    ) as response:
        return response.status, await response.json()
