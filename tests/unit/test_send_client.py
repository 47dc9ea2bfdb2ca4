"""notifyd.client and `notifyd send` stay light (a PBX starts one per call) and read their
input as documented; what they do against a daemon is tests/integration/test_send.py."""

from __future__ import annotations

import base64
import hmac
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from notifyd import client, send_cli
from tests.conftest import PBX_SECRET

# What the daemon loads and a sender must not: each costs tens of milliseconds a start.
HEAVY = {
    "aiohttp", "asyncpg", "aiosmtplib", "apscheduler", "structlog", "pydantic", "jinja2",
    "babel", "phonenumbers", "cryptography", "PIL", "dkim", "asyncio", "importlib.metadata",
    "dataclasses", "uuid", "notifyd.settings", "notifyd.catalogue", "notifyd.cli",
}  # fmt: skip


def imported_by(code: list[str]) -> set[str]:
    """The modules a fresh interpreter imports for `code`, read from -X importtime."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    return set(lines[1:])  # the first line is the header


@pytest.mark.parametrize(
    "code",
    [["-c", "import notifyd.client"], ["-m", "notifyd", "send", "--help"]],
    ids=["import notifyd.client", "notifyd send --help"],
)
def test_a_sender_loads_nothing_of_the_daemon(code: list[str]) -> None:
    modules = imported_by(code)
    assert "standardwebhooks" in modules or "notifyd.send_cli" in modules  # it did run
    loaded = {name for name in modules if name in HEAVY or name.split(".")[0] in HEAVY}
    assert not loaded, f"{' '.join(code)} imports {sorted(loaded)}"


def test_every_other_command_still_loads_the_daemon_and_lists_send() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "notifyd", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "send" in done.stdout
    assert "simulate" in done.stdout


def test_an_event_is_the_envelope_notifyd_reads() -> None:
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    built = client.event("billing.credit_added", "acc-1", {"amount": "10.00"}, when)
    assert built == {
        "type": "billing.credit_added",
        "timestamp": "2026-03-01T09:30:00+00:00",
        "data": {"account_id": "acc-1", "amount": "10.00"},
    }
    with pytest.raises(ValueError, match="needs its zone"):
        client.event("billing.credit_added", "acc-1", {}, datetime(2026, 3, 1, 9, 30))


def test_each_attempt_is_signed_for_its_own_moment_under_the_same_id() -> None:
    outgoing = client.prepare({"type": "call.missed", "data": {}})
    signer = Webhook(PBX_SECRET)
    now = datetime.now(UTC)
    later = now + timedelta(minutes=10)
    first = client.signed_headers(signer, outgoing, now)
    retry = client.signed_headers(signer, outgoing, later)
    assert first["webhook-id"] == retry["webhook-id"] == outgoing.webhook_id
    assert retry["webhook-timestamp"] == str(int(later.timestamp()))
    # SPEC §3, computed by hand: HMAC-SHA256 of "{id}.{timestamp}.{body}" with the key.
    key = base64.b64decode(PBX_SECRET.removeprefix("whsec_"))
    signed = f"{outgoing.webhook_id}.{int(later.timestamp())}.".encode() + outgoing.body
    expected = base64.b64encode(hmac.digest(key, signed, "sha256")).decode()
    assert retry["webhook-signature"] == f"v1,{expected}"
    assert first["webhook-signature"] != retry["webhook-signature"]


def test_data_items_are_text_unless_given_as_json() -> None:
    fields = send_cli._fields(
        ["call_id=1700000099.7", "ring_seconds:=40", "to_voicemail:=true", "note=a=b"]
    )
    assert fields == {
        "call_id": "1700000099.7",
        "ring_seconds": 40,
        "to_voicemail": True,
        "note": "a=b",
    }
    with pytest.raises(send_cli.UsageError, match="not JSON"):
        send_cli._fields(["ring_seconds:=forty"])


def test_a_secret_file_gives_its_first_line_without_the_newline(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(f"\n{PBX_SECRET}\n", encoding="utf-8")
    assert client.read_secret(path) == PBX_SECRET
    with pytest.raises(ValueError, match="not a whsec_ secret"):
        client.Client("http://127.0.0.1:9/v1/webhooks/pbx", "whsec_!!!")
