"""The query parameters of the admin lists: how many (`limit`), from when (`before`) and,
among entries of that same moment, from which (`before_id`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema


def clamped(maximum: int, message: str = "must be a whole number") -> Callable[[object], object]:
    """A whole number, taken as 1 below 1 and as `maximum` above it (never refused for its
    size); `message` says what is wrong with text that is no number. Annotated after
    Field(ge=1, le=maximum), which then shows in the schema as minimum and maximum."""

    def parse(value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return min(max(int(value), 1), maximum)
        except ValueError:
            raise ValueError(message) from None

    return parse


# A query string reads '+' as a space: `before=…T10:15:02.118204+00:00`, pasted from an
# answer into curl or a browser, arrives as `…T10:15:02.118204 00:00`. A space then an
# offset at the end of a time can only have been that '+' ('-' and 'Z' arrive as sent).
_PLUS_AS_SPACE = re.compile(r"(:\d\d(?:\.\d+)?) (\d\d(?::?\d\d)?)$")


def _rfc3339(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(_PLUS_AS_SPACE.sub(r"\1+\2", value.strip()))
    except ValueError:
        raise ValueError(
            "must be an RFC 3339 time, such as 2026-12-04T10:15:02Z or"
            " 2026-12-04T12:15:02%2B02:00 (a '+' in a URL is written %2B)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError("must carry a time zone offset")
    try:
        # PostgreSQL is given it in UTC: 9999-12-31T23:59-01:00 is past the last year.
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("must be within the years 1 to 9999 in UTC") from None


# At most 500 of a list, 50 unless asked.
Limit = Annotated[int, Field(ge=1, le=500), BeforeValidator(clamped(500))]
# Only those before this time: the next page of a list ordered newest first.
Before = Annotated[
    datetime | None,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# The id of the last entry of the previous page, given with its time as `before`. Entries
# stored in one transaction share their time (webhooks that arrive together are saved as
# one wave), so `before` alone skipped those of a page's last moment it had not shown.
BeforeId = Annotated[
    UUID | None,
    Field(
        description="With `before`: the id of the previous page's last entry, so that those"
        " of that same moment that it did not show come next"
    ),
]


def needs_before(value: UUID | None, info: ValidationInfo) -> UUID | None:
    """A field validator of `before_id`, declared after `before`: it goes with a time."""
    if value is not None and info.data.get("before") is None:
        raise ValueError("goes with before: give the previous page's last time as before too")
    return value
