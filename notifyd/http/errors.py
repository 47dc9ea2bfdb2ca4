"""JSON error answers: `{"error": code, "detail": text, "fields": {...}}` (SPEC §3)."""

from __future__ import annotations

from aiohttp import web


def error_response(
    status: int,
    code: str,
    detail: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, object] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return web.json_response(body, status=status, headers=headers)
