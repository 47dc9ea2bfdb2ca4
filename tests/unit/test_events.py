"""parse_event(): the event catalogue, with every field error reported by its path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifyd.catalogue.events import (
    AccountCreated,
    CallMissed,
    Category,
    InvalidEvent,
    MalformedBody,
    parse_event,
)
from notifyd.catalogue.samples import sample_event

NOW = datetime(2026, 11, 22, 10, 15, 0, tzinfo=UTC)


def body(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def sample(event_type: str, **overrides: Any) -> dict[str, Any]:
    return sample_event(event_type, account_id="acc-1001", now=NOW, **overrides)


def invalid(raw: bytes) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)
    return caught.value


def data_errors(event_type: str, **overrides: Any) -> dict[str, str]:
    return invalid(body(sample(event_type, **overrides))).fields


# -- valid events ------------------------------------------------------------------------------


def test_account_created_parses_into_a_typed_model() -> None:
    event = parse_event(body(sample("account.created")))

    assert event.type == "account.created"
    assert event.timestamp == NOW
    assert event.account_id == "acc-1001"
    assert isinstance(event.data, AccountCreated)
    assert event.data.category is Category.SERVICE
    assert event.data.email == "subscriber@example.com"
    assert event.data.username == "ana.popescu"
    assert event.data.name == "Ana Popescu"
    assert event.data.language == "ro"
    assert event.data.timezone == "Europe/Bucharest"


def test_call_missed_parses_into_a_typed_model() -> None:
    event = parse_event(body(sample("call.missed")))

    assert event.type == "call.missed"
    assert isinstance(event.data, CallMissed)
    assert event.data.category is Category.CALLS
    assert event.data.account_id == "acc-1001"
    assert event.data.caller_number == "+40721555123"
    assert event.data.caller_name == "Ion Ionescu"
    assert event.data.called_number == "+40215550100"
    assert event.data.extension == "101"
    assert event.data.started_at == NOW - timedelta(seconds=30)
    assert event.data.started_at.utcoffset() == timedelta(0)
    assert event.data.ring_seconds == 25
    assert event.data.to_voicemail is False


def test_optional_account_fields_may_be_left_out() -> None:
    event = sample("account.created")
    for key in ("name", "language", "timezone"):
        del event["data"][key]

    parsed = parse_event(body(event))

    assert isinstance(parsed.data, AccountCreated)
    assert (parsed.data.name, parsed.data.language, parsed.data.timezone) == (None, None, None)


def test_timestamp_with_an_offset_is_kept_as_the_same_instant() -> None:
    event = sample("call.missed", started_at="2026-11-22T12:00:00+02:00")

    parsed = parse_event(body(event))

    assert isinstance(parsed.data, CallMissed)
    assert parsed.data.started_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_email_is_normalised() -> None:
    event = parse_event(body(sample("account.created", email="Ana.Popescu@Example.COM")))

    assert isinstance(event.data, AccountCreated)
    assert event.data.email == "Ana.Popescu@example.com"


def test_extra_unknown_fields_are_dropped_from_the_model() -> None:
    event = sample("account.created", password="hunter2", plan={"id": "gold"})
    event["signature_of_sender"] = "ignored too"

    parsed = parse_event(body(event))

    dumped = parsed.data.model_dump()
    assert "password" not in dumped
    assert "plan" not in dumped
    assert set(dumped) == {"account_id", "email", "username", "name", "language", "timezone"}


# -- not an event ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"type": "call.missed",', b"\xff\xfe"])
def test_malformed_json_is_a_malformed_body(raw: bytes) -> None:
    with pytest.raises(MalformedBody, match="not valid JSON"):
        parse_event(raw)


@pytest.mark.parametrize("raw", [b"[]", b'["call.missed"]', b'"call.missed"', b"42", b"null"])
def test_json_that_is_not_an_object_is_an_invalid_event(raw: bytes) -> None:
    error = invalid(raw)

    assert error.code == "invalid_event"
    assert error.fields == {"body": "must be an object"}
    assert error.event_type is None


def test_unknown_type_is_reported_on_the_type_key() -> None:
    error = invalid(body({"type": "pizza.ordered", "timestamp": NOW.isoformat(), "data": {}}))

    assert error.code == "unknown_type"
    assert list(error.fields) == ["type"]
    assert "account.created" in error.fields["type"]
    assert "voicemail.received" in error.fields["type"]
    assert error.event_type is None  # not a safe metric label


def test_missing_timestamp_is_reported_on_the_timestamp_key() -> None:
    event = sample("call.missed")
    del event["timestamp"]

    error = invalid(body(event))

    assert error.code == "invalid_event"
    assert error.fields == {"timestamp": "Field required"}


def test_naive_envelope_timestamp_is_rejected() -> None:
    error = invalid(body(sample("call.missed") | {"timestamp": "2026-11-22T10:15:00"}))

    assert error.fields == {"timestamp": "Input should have timezone info"}


def test_missing_data_object_is_reported_on_the_data_key() -> None:
    event = sample("call.missed")
    del event["data"]

    assert invalid(body(event)).fields == {"data": "Field required"}


# -- invalid data ------------------------------------------------------------------------------


def test_missing_data_field_is_reported_by_its_path() -> None:
    event = sample("call.missed")
    del event["data"]["caller_number"]

    error = invalid(body(event))

    assert error.code == "invalid_event"
    assert error.fields == {"data.caller_number": "Field required"}
    assert error.event_type == "call.missed"


def test_several_errors_are_all_listed_at_once() -> None:
    event = sample("call.missed", caller_number=["call me"], started_at="2026-11-22T10:00:00")
    del event["data"]["called_number"]
    del event["data"]["call_id"]

    error = invalid(body(event))

    assert set(error.fields) == {
        "data.caller_number",
        "data.called_number",
        "data.call_id",
        "data.started_at",
    }


@pytest.mark.parametrize("address", ["not-an-email", "ana@", "@example.com", "ana@@example.com"])
def test_invalid_email_is_rejected(address: str) -> None:
    fields = data_errors("account.created", email=address)

    assert list(fields) == ["data.email"]
    assert fields["data.email"].startswith("is not a valid email address")


@pytest.mark.parametrize(
    ("number", "stored"),
    [
        ("anonymous", "anonymous"),
        ("Anonymous", "anonymous"),
        (" withheld ", "withheld"),
        ("+40721555123", "+40721555123"),
        ("0721 555 123", "0721 555 123"),
        ("+40 (21) 555-0100", "+40215550100"),  # E.164 is normalised
        ("*86", "*86"),
    ],
)
def test_withheld_words_and_dialled_numbers_are_accepted(number: str, stored: str) -> None:
    event = parse_event(body(sample("call.missed", caller_number=number)))

    assert isinstance(event.data, CallMissed)
    assert event.data.caller_number == stored


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("Ion\r\nBcc: victim@example.com", "Ion Bcc: victim@example.com"),
        ("Ion\nIonescu", "Ion Ionescu"),
        ("Ion\rIonescu", "Ion Ionescu"),
        ("Ion\x00", "Ion"),
    ],
)
def test_line_breaks_in_a_caller_name_become_spaces(name: str, cleaned: str) -> None:
    # The caller chooses the caller ID name: rejecting it would let a caller suppress the
    # notice, so control characters are neutralised instead.
    event = parse_event(body(sample("call.missed", caller_name=name)))

    assert isinstance(event.data, CallMissed)
    assert event.data.caller_name == cleaned


@pytest.mark.parametrize("name", ["\x00\x07", "", " \t ", None])
def test_a_caller_name_with_nothing_printable_is_left_out(name: str | None) -> None:
    # For the same reason: the call is kept, as if the PBX had sent no name.
    event = parse_event(body(sample("call.missed", caller_name=name)))

    assert isinstance(event.data, CallMissed)
    assert event.data.caller_name is None


def test_line_breaks_in_username_are_rejected() -> None:
    fields = data_errors("account.created", username="ana\r\nSubject: hi")

    assert list(fields) == ["data.username"]


def test_naive_started_at_is_rejected() -> None:
    fields = data_errors("call.missed", started_at="2026-11-22T10:00:00")

    assert fields == {"data.started_at": "Input should have timezone info"}


def test_unknown_subscriber_timezone_is_left_to_the_default_not_refused() -> None:
    # A refused account.created loses every notice of the account (README, the webhook rules).
    event = parse_event(body(sample("account.created", timezone="Europe/Bucuresti")))

    assert isinstance(event.data, AccountCreated)
    assert (event.data.timezone, event.data.not_understood) == (None, ("timezone",))


def test_unsupported_subscriber_language_is_left_to_the_default_not_refused() -> None:
    event = parse_event(body(sample("account.created", language="fr")))

    assert isinstance(event.data, AccountCreated)
    assert (event.data.language, event.data.not_understood) == (None, ("language",))


@pytest.mark.parametrize("seconds", [-1, 86401])
def test_ring_seconds_out_of_range_is_rejected(seconds: int) -> None:
    assert list(data_errors("call.missed", ring_seconds=seconds)) == ["data.ring_seconds"]
