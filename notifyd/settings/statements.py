"""[statements]: when the monthly credit statement (category `statement`, kind
`billing.statement`) goes out. What it says is rules/statements.py; the job that queues it
jobs.py; its running record storage/statements.py."""

from __future__ import annotations

from datetime import time as time_of_day
from typing import Annotated

from pydantic import BeforeValidator, Field

from notifyd.model import parse_time_of_day
from notifyd.settings.fields import Section


def _time_of_day(value: object) -> object:
    if isinstance(value, time_of_day):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return parse_time_of_day(value)


class StatementSettings(Section):
    day_of_month: int = Field(
        1,
        ge=1,
        le=28,
        description="Day of the month on which the statement of the month before goes out "
        "(1-28, so that every month has it). Subscribers choose whether they get one (off "
        "unless they turn it on, or [defaults.modes] statement says otherwise).",
    )
    time: Annotated[time_of_day, BeforeValidator(_time_of_day)] = Field(
        time_of_day(8, 0),
        description="Local time of the subscriber (their time zone) at which it goes out; a "
        "statement that fell due while no daemon ran goes out when one starts.",
    )
