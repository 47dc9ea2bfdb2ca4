"""A webhook's body as one model: the union of the catalogue's event types (events.py),
told apart by `type`. The OpenAPI document describes the body with it (http/webhooks.py),
and `parse_webhook` reads a valid body with it in one pass over the bytes.

`events.parse_event` reads the same body in two steps (the envelope, then `data` by its
type) so that every error is named as the webhook's 422 names it: an unknown type as such,
the envelope's errors apart from the data's. A valid body is read here instead, which
costs a quarter less (docs/performance.md, "The intake's floor"): the JSON is parsed
straight into the event's model, not into a dict that is then validated again. Whatever
this pass refuses is read again by `parse_event`, whose errors are the answer: no wording
changes, and only a refused body pays for both.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter, create_model

from notifyd import unstorable
from notifyd.catalogue.events import CATALOGUE, Event, EventData, parse_event


def _webhook_of(model: type[EventData]) -> type[BaseModel]:
    # The type name is known only at run time: a Literal made of it.
    type_name: Any = Literal[model.type_name]
    return create_model(
        f"{model.__name__}Webhook",
        __doc__=f"The body of a {model.type_name} webhook.",
        type=(type_name, ...),
        timestamp=(AwareDatetime, ...),
        data=(model, ...),
    )


_one_of_the_catalogue: Any = functools.reduce(
    operator.or_, [_webhook_of(model) for model in CATALOGUE.values()]
)
# One schema per event type of the catalogue, told apart by `type`.
WEBHOOK_BODY: Any = Annotated[_one_of_the_catalogue, Field(discriminator="type")]
# Built once: a TypeAdapter compiles its validator when it is made.
_BODY: TypeAdapter[Any] = TypeAdapter(WEBHOOK_BODY)


def parse_webhook(body: bytes) -> Event:
    """The event of a webhook body; raise MalformedBody or InvalidEvent as `parse_event`
    does, with its errors, for any body this pass refuses."""
    # A NUL can come only from an escape, and parse_event names the fields that hold one.
    if unstorable.may_hold_nul(body):
        return parse_event(body)
    try:
        webhook = _BODY.validate_json(body)
    except pydantic.ValidationError:
        return parse_event(body)
    return Event(type=webhook.type, timestamp=webhook.timestamp, data=webhook.data)
