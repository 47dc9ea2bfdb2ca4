"""parse_webhook reads a valid body in one pass (the union of the catalogue's models) and
leaves every other body to parse_event: whatever the body, the two give the same event or
the same error, wording and fields included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifyd.catalogue import webhook_body
from notifyd.catalogue.events import CATALOGUE, Event, InvalidEvent, MalformedBody, parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.catalogue.webhook_body import parse_webhook

NOW = datetime(2026, 11, 22, 10, 15, 0, tzinfo=UTC)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["x\x00", "\ud800"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


def _outcome(parse: Any, body: bytes) -> tuple[str, Any]:
    try:
        event: Event = parse(body)
    except InvalidEvent as error:
        return "invalid", (error.code, error.detail, error.fields, error.event_type)
    except MalformedBody as error:
        return "malformed", str(error)
    return "event", event


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
def test_a_valid_body_is_read_in_one_pass_into_the_same_event(
    event_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(sample_event(event_type, now=NOW)).encode()
    expected = parse_event(body)

    def two_steps(_body: bytes) -> Event:
        raise AssertionError("a valid body was read a second time")

    monkeypatch.setattr(webhook_body, "parse_event", two_steps)
    assert parse_webhook(body) == expected


# Values that a field's validator may take for valid, or refuse by a hair: a naive
# time, a number as text, padding, a control character.
NEAR_MISSES = st.sampled_from(
    ["", " +40721555123 ", "5", "2026-11-22T10:15:00Z", "2026-11-22T10:15:00", "a\u202eb"]
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.sampled_from(sorted(CATALOGUE)),
    in_data=st.booleans(),
    choice=st.data(),
    drop=st.booleans(),
)
def test_any_body_gives_what_the_two_step_reading_gives(
    event_type: str, in_data: bool, choice: st.DataObject, drop: bool
) -> None:
    event = sample_event(event_type, now=NOW)
    target = event["data"] if in_data else event
    key = choice.draw(st.sampled_from([*sorted(target), "extra"]), label="key")
    if drop:
        target.pop(key, None)
    else:
        target[key] = choice.draw(NEAR_MISSES | JSON_VALUES, label="value")
    body = json.dumps(event).encode()
    assert _outcome(parse_webhook, body) == _outcome(parse_event, body)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"type": "no.such", "timestamp": "2026-11-22T10:15:00Z", "data": {}}',
        b'{"type": "call.missed", "timestamp": "2026-11-22T10:15:00", "data": {}}',
        b'{"type": "call.missed", "timestamp": "2026-11-22T10:15:00Z", "data": "\\ud800"}',
        b'{"type": "call.missed", "timestamp": "2026-11-22T10:15:00Z", "data": {"a": "\\u0000"}}',
    ],
)
def test_a_refused_body_is_refused_with_the_two_step_errors(body: bytes) -> None:
    assert _outcome(parse_webhook, body)[0] != "event"
    assert _outcome(parse_webhook, body) == _outcome(parse_event, body)


def test_a_nul_in_a_valid_field_is_named_as_the_two_step_reading_names_it() -> None:
    event = sample_event("call.missed", now=NOW)
    event["data"]["call_id"] = "abc\x00def"
    body = json.dumps(event).encode()
    outcome = _outcome(parse_webhook, body)
    assert outcome[0] == "invalid"
    assert outcome == _outcome(parse_event, body)
