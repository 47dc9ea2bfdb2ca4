"""`notifyd simulate --set`: values are read as the event schema's field types, and a value
that cannot be one is refused before anything is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifyd.catalogue.events import CATALOGUE
from notifyd.catalogue.samples import sample_data
from notifyd.cli import main, typed_overrides
from tests.conftest import PBX_SECRET, write_config


def test_a_call_id_that_looks_like_a_number_stays_a_string() -> None:
    overrides = typed_overrides("call.missed", ["call_id=1700000099.7", "extension=101"])
    assert overrides == {"call_id": "1700000099.7", "extension": "101"}


def test_integers_booleans_and_lists_are_parsed() -> None:
    overrides = typed_overrides(
        "call.missed", ["ring_seconds=40", "to_voicemail=true", "caller_name=Ion Popescu"]
    )
    assert overrides == {"ring_seconds": 40, "to_voicemail": True, "caller_name": "Ion Popescu"}
    lists = typed_overrides(
        "account.ip_allowlist_changed",
        ['previous=["203.0.113.10"]', "current=203.0.113.10,198.51.100.0/24", "source_ip=null"],
    )
    assert lists == {
        "previous": ["203.0.113.10"],
        "current": ["203.0.113.10", "198.51.100.0/24"],
        "source_ip": None,
    }


def test_every_sample_field_given_as_text_gives_a_valid_event() -> None:
    # What `--set FIELD=<the sample's own value as typed on a command line>` sends is valid.
    now = datetime.now(UTC)
    for event_type, model in CATALOGUE.items():
        sample = sample_data(event_type, "acc-1", now)
        for field, value in sample.items():
            if isinstance(value, dict):
                continue  # attachments: JSON objects, tested below
            if isinstance(value, list):
                text = ",".join(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            overrides = typed_overrides(event_type, [f"{field}={text}"])
            model.model_validate({**sample, **overrides})


@pytest.mark.parametrize(
    ("event_type", "item", "message"),
    [
        (
            "call.missed",
            "ring_seconds=twenty",
            "--set ring_seconds: must be an integer, got 'twenty'",
        ),
        ("call.missed", "to_voicemail=yes", "--set to_voicemail: must be true or false, got 'yes'"),
        ("fax.sent", "pages=1.5", "--set pages: must be an integer, got '1.5'"),
        ("voicemail.received", "audio=x.wav", "--set audio: must be a JSON object, got 'x.wav'"),
        ("call.missed", "colour=blue", "--set colour: call.missed has no field 'colour'"),
    ],
)
def test_a_value_that_cannot_be_of_the_field_type_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], event_type: str, item: str, message: str
) -> None:
    config = write_config(tmp_path / "notifyd.toml", {"sources.pbx": {"secrets": [PBX_SECRET]}})
    # Nothing listens on port 9 of this host: had it sent, it would say it cannot reach it.
    argv = ["simulate", event_type, "--config", str(config), "--url", "http://127.0.0.1:9"]
    assert main([*argv, "--set", item]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [captured.err.strip()]
    assert captured.err.startswith(message)
