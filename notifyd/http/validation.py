"""Requests read through pydantic models, every problem named at once and raised as a
Problem; answers written from pydantic models (`Reply`), so that what a handler sends is
what the OpenAPI document says of it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, TypeVar
from uuid import UUID

import pydantic
from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from notifyd import unstorable
from notifyd.http.errors import Problem

M = TypeVar("M", bound=BaseModel)


# The largest JSON body of an admin call: a subscriber, its preferences or a broadcast's
# texts take a few KiB. The app's own cap is 1 GiB (for the streamed imports), and a file
# sent here by mistake was held whole, 2.5 times over while parsed, beside the webhooks.
JSON_BODY_LIMIT = 1024 * 1024
_TOO_LARGE = Problem(413, "body_too_large", f"the body is over 1 MiB ({JSON_BODY_LIMIT} bytes)")


async def json_body(
    request: web.Request, model: type[M], detail: str = "the request body is invalid"
) -> M:
    """The body validated by `model`; else a 400 or 422 that names every problem, or a 413
    for a body over JSON_BODY_LIMIT, refused before it is read when its length is given."""
    if (request.content_length or 0) > JSON_BODY_LIMIT:
        raise _TOO_LARGE
    buffer = bytearray()
    # A chunked body has no length to check first: read on only while it is within the cap.
    while chunk := await request.content.read(JSON_BODY_LIMIT + 1 - len(buffer)):
        buffer += chunk
        if len(buffer) > JSON_BODY_LIMIT:
            raise _TOO_LARGE
    raw = bytes(buffer)
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
        raise Problem(422, "invalid_request", detail, _fields(error)) from None
    refused = unstorable.found(body) if unstorable.may_hold_nul(raw) else {}
    if refused:
        raise Problem(422, "invalid_request", detail, refused)
    return body


def query_parameters(request: web.Request, model: type[M], detail: str = "invalid query") -> M:
    """The query validated by `model` (the first value of a name given twice); else a 422
    that names every bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except pydantic.ValidationError as error:
        raise Problem(422, "invalid_request", detail, _fields(error)) from None


def path_parameters(request: web.Request, model: type[M], unknown: Problem) -> M:
    """The path's parameters validated by `model`; else `unknown`, since a value of the
    wrong form names nothing (an event id that is no UUID: no such event)."""
    try:
        return model.model_validate(dict(request.match_info))
    except pydantic.ValidationError:
        raise unknown from None


def _fields(error: pydantic.ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False):
        # A bad dict key is reported at `<key>.[key]`: it is named by the key alone.
        path = ".".join(str(part) for part in item["loc"] if part != "[key]") or "body"
        message = item["msg"].removeprefix("Value error, ")
        fields[path] = f"{fields[path]}; {message}" if path in fields else message
    return fields


def _uuid(value: object) -> object:
    return UUID(value) if isinstance(value, str) else value


# An id in a path: read as uuid.UUID reads it (braces, "urn:uuid:", any hyphens).
Id = Annotated[UUID, BeforeValidator(_uuid)]


class Reply(BaseModel):
    """The body of an answer. Built from stored rows (dicts) or the model's dataclasses
    (their attributes); a key it does not declare is refused, so a column added to a query
    fails the tests until the answer, and with it the document, declares it."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


def respond(reply: Reply, status: int = 200) -> web.Response:
    return web.json_response(reply.model_dump(mode="json"), status=status)


def absent(value: object) -> bool:
    """For `exclude_if`: a field left at None is left out of the answer."""
    return value is None


# As the answers always wrote them (datetime.isoformat: "+00:00"), not pydantic's "Z".
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# Money and thresholds as decimal strings ("20.00"), never as JSON numbers.
DecimalText = Annotated[
    Decimal,
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": 'A decimal number, such as "20.00"'}),
]
