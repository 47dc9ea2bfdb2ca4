"""Log masking: addresses and phone numbers hidden, secrets dropped by key, JSON lines out."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from notifyd.logs import (
    configure,
    log_loop_exceptions,
    mask,
    mask_credentials,
    mask_email,
    mask_phone,
    mask_pii,
)


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    """configure() changes process-wide state: structlog, the root logger, the warnings
    module's hook and the exception hooks. Each test gets them back as they were."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    showwarning = warnings.showwarning
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)
    warnings.showwarning = showwarning


# -- mask_email --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("ana.popescu@example.com", "a***@example.com"),
        ("m@client.example", "m***@client.example"),
        ("to: Ana <ana+notices@mail.example.ro>", "to: Ana <a***@mail.example.ro>"),
        ("ana@example.com, ion@example.org", "a***@example.com, i***@example.org"),
    ],
)
def test_mask_email_keeps_the_first_letter_and_the_domain(text: str, masked: str) -> None:
    assert mask_email(text) == masked


def test_mask_email_leaves_text_without_addresses_alone() -> None:
    assert mask_email("delivery failed: 550 mailbox unavailable") == (
        "delivery failed: 550 mailbox unavailable"
    )


# -- mask_phone --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+40721555123", "+********123"),
        ("call from +40721555123", "call from +********123"),
        ("+40 721 555 123", "+********123"),
        ("0721555123", "*******123"),
        ("0721-555-123", "*******123"),
        ("1234567", "****567"),
    ],
)
def test_mask_phone_hides_all_but_the_last_three_digits(text: str, masked: str) -> None:
    assert mask_phone(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "listening on port 8080",
        "smtp reply 250 ok",
        "extension 101",
        "count 123456",
        "acc-1001",
        "took 12.5 s",
    ],
)
def test_mask_phone_leaves_short_numbers_such_as_ports_untouched(text: str) -> None:
    assert mask_phone(text) == text


def test_mask_hides_both_addresses_and_numbers() -> None:
    text = "notice for ana@example.com about +40721555123 on port 587"

    assert mask(text) == "notice for a***@example.com about +********123 on port 587"


# -- mask_pii processor ------------------------------------------------------------------------


def test_mask_pii_masks_values_and_redacts_secret_keys() -> None:
    event: dict[str, Any] = {
        "event": "delivery",
        "recipient": "ana@example.com",
        "caller": "+40721555123",
        "password": "hunter2",
        "Authorization": "Bearer abc",
        "secrets": ["whsec_abc"],
        "token": "t0k3n",
        "pin": "1234",
        "port": 587,
    }

    result = mask_pii(None, "info", event)

    assert result == {
        "event": "delivery",
        "recipient": "a***@example.com",
        "caller": "+********123",
        "password": "[redacted]",
        "Authorization": "[redacted]",
        "secrets": "[redacted]",
        "token": "[redacted]",
        "pin": "[redacted]",
        "port": 587,
    }


def test_mask_pii_masks_inside_lists_and_dicts() -> None:
    event: dict[str, Any] = {
        "event": "batch",
        "recipients": ["ana@example.com", "ion@example.org"],
        "call": {"from": "+40721555123", "ring_seconds": 25},
        "pair": ("+40721555123", 3),
    }

    result = mask_pii(None, "info", event)

    assert result["recipients"] == ["a***@example.com", "i***@example.org"]
    assert result["call"] == {"from": "+********123", "ring_seconds": 25}
    assert result["pair"] == ["+********123", 3]


def test_values_of_other_types_are_masked_as_their_text() -> None:
    # The JSON renderer writes what it does not know by its repr: ValueError('ana@...').
    event: dict[str, Any] = {
        "event": "x",
        "error": ValueError("no route for ana@example.com"),
        "raw": b"From: ana@example.com",
        "numbers": {"+40721555123", "+40721555124"},
        "ring_seconds": 25,
        "ratio": 0.5,
        "to_voicemail": False,
        "name": None,
    }

    result = mask_pii(None, "info", event)

    assert result["error"] == "no route for a***@example.com"
    assert result["raw"] == "b'From: a***@example.com'"
    assert sorted(result["numbers"]) == ["+********123", "+********124"]
    assert (result["ring_seconds"], result["ratio"], result["to_voicemail"]) == (25, 0.5, False)
    assert result["name"] is None


def test_mask_pii_leaves_our_identifiers_and_timestamp_alone() -> None:
    event: dict[str, Any] = {
        "event": "x",
        "timestamp": "2026-11-22T10:00:00.123456Z",
        "level": "info",
        "request_id": "3f2a9c0d8e7b4a1f9c2d6e5b4a3f2e1d",
        "event_id": "4711000000",
        "notice_id": "8811000000",
    }

    assert mask_pii(None, "info", dict(event)) == event


# -- configure(): the rendered line ------------------------------------------------------------


@pytest.mark.usefixtures("restore_structlog")
def test_logged_line_is_json_with_masked_values() -> None:
    stream = io.StringIO()
    configure(level="info", fmt="json", stream=stream)

    structlog.get_logger("test").info(
        "delivery", recipient="ana@example.com", caller="+40721555123", password="hunter2", port=25
    )

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "delivery"
    assert record["level"] == "info"
    assert record["recipient"] == "a***@example.com"
    assert record["caller"] == "+********123"
    assert record["password"] == "[redacted]"
    assert record["port"] == 25
    assert record["timestamp"].endswith("Z")
    assert "hunter2" not in lines[0]
    assert "ana@example.com" not in lines[0]
    assert "40721555123" not in lines[0]


@pytest.mark.usefixtures("restore_structlog")
def test_message_text_itself_is_masked() -> None:
    stream = io.StringIO()
    configure(stream=stream)

    structlog.get_logger("test").warning("bounce from ana@example.com")

    assert json.loads(stream.getvalue())["event"] == "bounce from a***@example.com"


@pytest.mark.usefixtures("restore_structlog")
def test_configured_level_filters_lower_levels() -> None:
    stream = io.StringIO()
    configure(level="warning", stream=stream)
    log = structlog.get_logger("test")

    log.info("hidden")
    log.warning("shown")

    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["shown"]


@pytest.mark.usefixtures("restore_structlog")
def test_a_logger_in_use_writes_where_and_as_the_last_configure_says() -> None:
    """Lines share one writer and one JSON encoder made by configure(): a reload's stream
    and level still reach a logger that was in use before it."""
    first, second = io.StringIO(), io.StringIO()
    log = structlog.get_logger("test")
    configure(level="info", stream=first)
    log.info("before", event_id=UUID("6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"))
    configure(level="warning", stream=second)
    log.info("hidden")
    log.warning("after", notices=2, rate=0.5, skipped=None, ok=True)

    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["before"]
    # A value JSON has no type for, under a key mask_pii leaves alone: its repr, as before.
    assert json.loads(first.getvalue())["event_id"] == (
        "UUID('6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f')"
    )
    record = json.loads(second.getvalue())
    assert (record["event"], record["notices"], record["rate"]) == ("after", 2, 0.5)
    assert (record["skipped"], record["ok"]) == (None, True)


@pytest.mark.parametrize(
    "text",
    ["2026-11-22 10:00:00+00:00", "2026-11-22T10:00:00Z", "from 192.168.100.200", "port 5432"],
)
def test_dates_addresses_and_ports_are_not_mistaken_for_phone_numbers(text: str) -> None:
    assert mask(text) == text


def test_secrets_nested_in_a_logged_mapping_are_redacted() -> None:
    event = mask_pii(None, "info", {"event": "x", "smtp": {"password": "hunter2", "port": 25}})

    assert event["smtp"] == {"password": "[redacted]", "port": 25}


@given(
    st.text(alphabet=st.sampled_from("ab.@+-() 0123456789x_:"), max_size=60) | st.text(max_size=60)
)
def test_the_quick_checks_mask_exactly_what_the_full_masking_does(text: str) -> None:
    # `mask` skips the address pass when the text has no "@".
    assert mask(text) == mask_phone(mask_email(mask_credentials(text)))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # aiohttp's parser error for an over-long line quotes its first hundred bytes.
        (
            "Got more than 8190 bytes when reading: bytearray(b'/v1/preferences/QUJD-_9x?aa...')",
            "Got more than 8190 bytes when reading: bytearray(b'/v1/preferences/***?aa...')",
        ),
        ("/v1/links/QUJD-_9x/renew", "/v1/links/***/renew"),
        ("POST /v1/unsubscribe/QUJD%2F HTTP/1.1", "POST /v1/unsubscribe/*** HTTP/1.1"),
        ("b'Bearer ops-token-7c1f' b'bearer\tx'", "b'Bearer [redacted]' b'bearer\t[redacted]'"),
        # The route as declared names no token.
        ("/v1/preferences/{token}", "/v1/preferences/{token}"),
    ],
)
def test_link_and_bearer_tokens_in_any_text_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


# -- addresses beyond ASCII, SIP and tel URIs --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("ana@bücher.de", "a***@bücher.de"),
        ("іван@приклад.укр", "і***@приклад.укр"),
        ("to: ana@xn--bcher-kva.de", "to: a***@xn--bcher-kva.de"),
        ("ion@example.xn--p1ai", "i***@example.xn--p1ai"),
        ("josé.núñez@correo.es", "j***@correo.es"),
    ],
)
def test_internationalised_addresses_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_an_address_quoted_as_bytes_is_masked() -> None:
    # aiohttp's parser errors quote the raw header: a non-ASCII address arrives as escapes.
    text = r"Invalid header token: b'X-Caller \xd0\xb0\xd0\xbd\xd0\xb0@b\xc3\xbccher.de'"

    assert mask(text) == r"Invalid header token: b'X-Caller \***@b\xc3\xbccher.de'"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("sip:0721555123@pbx.example.com", "sip:*******123@pbx.example.com"),
        ("from <sip:+40721555123@pbx.example.com>", "from <sip:+********123@pbx.example.com>"),
        ("sips:+40721555123@10.0.0.5:5061", "sips:+********123@10.0.0.5:5061"),
        ("SIP:0721555123@pbx", "SIP:*******123@pbx"),
        ("SiP:0721555123@pbx", "SiP:*******123@pbx"),
        ("sip:ion.popescu@pbx.example.com", "sip:i***@pbx.example.com"),
        ("tel:+40721555123", "tel:+********123"),
        (
            "<tel:+40-721-555-123;phone-context=example.com>",
            "<tel:+********123;phone-context=example.com>",
        ),
        ("caller sip:0721555123", "caller sip:*******123"),
        # aiohttp's parser error quoting the request line: the URI after an escaped byte.
        (
            r"b'GET /\x01sip:0721555123@pbx.example.com HTTP/1.1'",
            r"b'GET /\x01sip:*******123@pbx.example.com HTTP/1.1'",
        ),
    ],
)
def test_sip_and_tel_uris_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_a_masked_sip_number_is_not_masked_again_as_an_address() -> None:
    assert mask_email("sip:0721555123@pbx.example.com") == "sip:*******123@pbx.example.com"


def test_a_request_id_chosen_by_the_client_is_masked() -> None:
    event = mask_pii(None, "info", {"event": "x", "request_id": "ana@example.com+40721555123"})

    assert event["request_id"] == "a***@example.com+********123"


def test_the_admin_token_name_is_logged_and_the_token_itself_is_not() -> None:
    event = mask_pii(None, "info", {"event": "admin call", "token_name": "ops", "token": "t0k3n"})

    assert event == {"event": "admin call", "token_name": "ops", "token": "[redacted]"}


# -- everything else that writes to the log ----------------------------------------------------


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_structlog")
def test_standard_library_records_become_masked_json_lines() -> None:
    stream = io.StringIO()
    configure(stream=stream)

    try:
        raise ValueError("no route for ana@example.com from +40721555123")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "10.0.0.1")

    [record] = _records(stream)
    assert record["event"] == "Error handling request from 10.0.0.1"
    assert record["level"] == "error"
    assert record["logger"] == "aiohttp.server"
    assert record["timestamp"].endswith("Z")
    assert "Traceback" in record["exception"]
    assert "a***@example.com" in record["exception"]
    assert "ana@example.com" not in stream.getvalue()
    assert "40721555123" not in stream.getvalue()


@pytest.mark.usefixtures("restore_structlog")
def test_the_message_of_a_standard_library_record_is_masked() -> None:
    stream = io.StringIO()
    configure(stream=stream)

    logging.getLogger("apscheduler.executors.default").error(
        "Job %r raised an exception", "notify ana@example.com"
    )

    assert _records(stream)[0]["event"] == "Job 'notify a***@example.com' raised an exception"


@pytest.mark.usefixtures("restore_structlog")
def test_libraries_info_lines_stay_out_at_the_info_level() -> None:
    # APScheduler says "Running job ..." twice a run of every job: noise, never shown before.
    stream = io.StringIO()
    configure(level="info", stream=stream)

    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("asyncpg.pool").warning("pool is slow")

    assert [r["event"] for r in _records(stream)] == ["pool is slow"]


@pytest.mark.usefixtures("restore_structlog")
def test_configuring_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure(stream=first)
    configure(stream=second)

    logging.getLogger("asyncio").warning("once")

    assert first.getvalue() == ""
    assert [r["event"] for r in _records(second)] == ["once"]


@pytest.mark.usefixtures("restore_structlog")
def test_without_a_stream_the_libraries_lines_go_to_stdout_as_it_is_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure()
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)

    logging.getLogger("asyncpg.pool").warning("pool is slow")

    assert [r["event"] for r in _records(stream)] == ["pool is slow"]


@pytest.mark.usefixtures("restore_structlog")
def test_warnings_are_logged_as_masked_json() -> None:
    stream = io.StringIO()
    configure(stream=stream)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        # catch_warnings restores showwarning on exit: capture inside it.
        logging.captureWarnings(True)
        warnings.warn("unclosed connection for ana@example.com", ResourceWarning, stacklevel=1)

    [record] = _records(stream)
    assert record["logger"] == "py.warnings"
    assert "a***@example.com" in record["event"]
    assert "ana@example.com" not in stream.getvalue()


@pytest.mark.usefixtures("restore_structlog")
def test_an_uncaught_exception_is_a_masked_json_line() -> None:
    stream = io.StringIO()
    configure(stream=stream)

    try:
        raise RuntimeError("cannot reach ana@example.com")
    except RuntimeError as error:
        sys.excepthook(type(error), error, error.__traceback__)

    [record] = _records(stream)
    assert record["level"] == "critical"
    assert "RuntimeError: cannot reach a***@example.com" in record["exception"]
    assert "ana@example.com" not in stream.getvalue()


@pytest.mark.usefixtures("restore_structlog")
def test_an_exception_in_a_thread_is_a_masked_json_line() -> None:
    stream = io.StringIO()
    configure(stream=stream)

    def fail() -> None:
        raise RuntimeError("cannot reach +40721555123")

    thread = threading.Thread(target=fail, name="resolver")
    thread.start()
    thread.join(timeout=5)

    [record] = _records(stream)
    assert record["thread"] == "resolver"
    assert "+********123" in record["exception"]
    assert "40721555123" not in stream.getvalue()


@pytest.mark.usefixtures("restore_structlog")
def test_a_task_exception_never_retrieved_is_a_masked_json_line() -> None:
    stream = io.StringIO()
    configure(stream=stream)

    async def fail() -> None:
        raise ValueError("bounce for ana@example.com")

    async def leave_a_failed_task() -> None:
        log_loop_exceptions(asyncio.get_running_loop())
        task = asyncio.get_running_loop().create_task(fail())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert task.done()
        del task
        gc.collect()

    asyncio.run(leave_a_failed_task())

    [record] = _records(stream)
    assert record["event"] == "Task exception was never retrieved"
    assert record["level"] == "error"
    assert "ValueError: bounce for a***@example.com" in record["exception"]
    assert "ana@example.com" not in stream.getvalue()


# -- the set of text masking leaves alone (stop 28) --------------------------------------------


def test_only_text_the_masking_leaves_alone_is_held_and_never_an_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from notifyd import logs

    monkeypatch.setattr(logs, "_CLEAN", set())
    event = {
        "event": "event stored",
        "source": "pbx",
        "to": "ana@client.example",
        "caller": "+40721555123",
        "request_id": "0f3a9c1e5b7d2a4c0000000000000001",
    }
    for _ in range(2):  # the second time from the set: the same line
        assert mask_pii(None, "info", dict(event)) == {
            **event,
            "to": "a***@client.example",
            "caller": "+********123",
        }
    assert {"event stored", "pbx"} == logs._CLEAN


def test_the_set_of_clean_text_stops_growing_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    from notifyd import logs

    monkeypatch.setattr(logs, "_CLEAN", set())
    monkeypatch.setattr(logs, "_CLEAN_MAX", 3)
    for n in range(10):
        mask_pii(None, "info", {"event": f"line {n}"})
    assert {"line 0", "line 1", "line 2"} == logs._CLEAN
    # Past it, text is still masked, every time.
    assert mask_pii(None, "info", {"event": "call +40721555123"}) == {"event": "call +********123"}
