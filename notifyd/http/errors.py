"""JSON error answers: `{"error": code, "detail": text, "fields": {...}}` (SPEC §3)."""

from __future__ import annotations

from aiohttp import web


def error_response(
    status: int,
    code: str,
    detail: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> web.Response:
    """`extra`: what an answer adds to the common keys (an import's counts so far)."""
    body: dict[str, object] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    body.update(extra or {})
    return web.json_response(body, status=status, headers=headers)
