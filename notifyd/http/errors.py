"""JSON error answers: `{"error": code, "detail": text, "fields": {...}}` (SPEC §3).

A handler that finds something wrong raises `Problem` where it finds it; the app's
middleware (`app.request_context`) answers it, so no handler checks what a helper returned
before going on.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel, Field


def _nothing_to_say(fields: Mapping[str, str]) -> bool:
    return not fields


class Error(BaseModel):
    """The body of every JSON error answer."""

    error: str = Field(description="A code for programs: not_found, invalid_request, ...")
    detail: str = Field(description="What is wrong, for people")
    # Left out of the answer when no field is named.
    fields: dict[str, str] = Field(
        default_factory=dict,
        exclude_if=_nothing_to_say,
        description="Each field or parameter that is wrong, and what is wrong with it",
    )


def error_response(
    status: int,
    code: str,
    detail: str,
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> web.Response:
    """`extra`: what an answer adds to the common keys (an import's counts so far)."""
    body = Error(error=code, detail=detail, fields=dict(fields or {})).model_dump(mode="json")
    body.update(extra or {})
    return web.json_response(body, status=status, headers=headers)


class Problem(Exception):
    """An error answer, raised: `status`, and the body `error_response` writes."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        fields: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> web.Response:
        return error_response(
            self.status, self.code, self.detail, self.fields, self.headers, self.extra
        )
