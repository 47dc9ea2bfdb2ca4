"""Requests read through pydantic models: every problem named at once, raised as a Problem."""

from __future__ import annotations

from typing import TypeVar

import pydantic
from aiohttp import web
from pydantic import BaseModel

from notifyd import unstorable
from notifyd.http.errors import Problem

M = TypeVar("M", bound=BaseModel)


async def json_body(
    request: web.Request, model: type[M], detail: str = "the request body is invalid"
) -> M:
    """The body validated by `model`; else a 400 or 422 that names every problem."""
    raw = await request.read()
    try:
        body = model.model_validate_json(raw)
    except pydantic.ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors()):
            refused = unstorable.in_refused_json(raw)
            if refused:
                raise Problem(
                    422,
                    "invalid_request",
                    "a string in the body is not text (a lone surrogate)",
                    refused,
                ) from None
            raise Problem(400, "malformed_json", "the body is not valid JSON") from None
        fields: dict[str, str] = {}
        for item in error.errors(include_url=False):
            # A bad dict key is reported at `<key>.[key]`: it is named by the key alone.
            path = ".".join(str(part) for part in item["loc"] if part != "[key]") or "body"
            message = item["msg"].removeprefix("Value error, ")
            fields[path] = f"{fields[path]}; {message}" if path in fields else message
        raise Problem(422, "invalid_request", detail, fields) from None
    refused = unstorable.found(body) if unstorable.may_hold_nul(raw) else {}
    if refused:
        raise Problem(422, "invalid_request", detail, refused)
    return body
