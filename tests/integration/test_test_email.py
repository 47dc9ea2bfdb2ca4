"""`notifyd test-email ADDRESS`, run as an operator runs it, against a local relay that
demands STARTTLS (a throwaway CA given as [smtp] ca_file) and AUTH: the transcript of a
good send, a wrong password, a refused recipient, a relay that is down, and the DNS records
printed (DNS unreachable here) or checked (a stand-in resolver)."""

from __future__ import annotations

import re
import socket
import tomllib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from notifyd import relay_cli
from notifyd.mail.sender_dns import records_needed
from notifyd.settings import load
from tests.conftest import SmtpSink, base_config, load_config, write_config
from tests.integration.send_support import BIN, OPERATIONS, Ran, run, snippet
from tests.integration.smtp_support import auth_relay, certificates, dkim_key

PASSWORD = "s3cret-relay-pass"


def _dead_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _config(tmp_path: Path, port: int, ca_file: Path, password: str) -> Path:
    smtp = {
        "security": "starttls",
        "username": "notifyd",
        "password": password,
        "ca_file": str(ca_file),
        "bounce_domain": "bounces.voip.example",
    }
    dkim = {
        "domain": "voip.example",
        "selector": "nd1",
        "private_key_file": str(dkim_key(tmp_path)),
    }
    config = base_config(tmp_path, "postgresql://unused/db", port, smtp=smtp, dkim=dkim)
    return write_config(tmp_path / "notifyd.toml", config)


async def _test_email(config: Path, *args: str) -> Ran:
    """The command, its DNS questions sent to a loopback port where no server answers."""
    dead_dns = f"127.0.0.1:{_dead_port(socket.SOCK_DGRAM)}"
    argv = [f"{BIN}/notifyd", "test-email", *args, "--config", str(config)]
    ran = await run([*argv, "--nameserver", dead_dns], timeout=30)
    assert "Traceback" not in ran.out + ran.err, ran.err
    return ran


async def test_a_good_send_shows_every_step(tmp_path: Path) -> None:
    relay, accounts, ca_file = auth_relay(tmp_path, PASSWORD)
    async with relay as sink:
        config = _config(tmp_path, sink.port, ca_file, PASSWORD)
        ran = await _test_email(config, "ana@client.example")
        messages: list[EmailMessage] = await sink.wait_for(1)
    assert ran.code == 0, ran.err
    steps = [
        f"connect: 127.0.0.1:{sink.port} (STARTTLS",
        "greeting: 220 ",
        "extensions: ",
        "STARTTLS: 220 ",
        "TLS: TLSv1.",
        "certificate subject: ",
        "certificate issuer: OU=Testing CA",
        f"verified: yes, against ca_file {ca_file}",
        "AUTH ",
        "as notifyd: 235 ",
        "MAIL FROM:<bounce@bounces.voip.example>: 250",
        "RCPT TO:<ana@client.example>: 250",
        "sent: the relay accepted the message: 250 2.0.0 Ok: queued",
    ]
    at = [ran.out.find(step) for step in steps]
    assert -1 not in at, (steps, ran.out)
    assert at == sorted(at), ran.out
    assert PASSWORD not in ran.out + ran.err
    assert accounts.logins == ["notifyd"]
    assert messages[0]["To"] == "ana@client.example"
    assert messages[0]["DKIM-Signature"] is not None
    assert sink.envelopes == [("bounce@bounces.voip.example", ["ana@client.example"])]


async def test_dns_unreachable_prints_the_records_to_publish(tmp_path: Path) -> None:
    relay, _accounts, ca_file = auth_relay(tmp_path, PASSWORD)
    async with relay as sink:
        config = _config(tmp_path, sink.port, ca_file, PASSWORD)
        ran = await _test_email(config, "ana@client.example")
    settings = load(config, environ={})
    dkim_value = records_needed(settings.smtp, settings.dkim)[1].value
    assert dkim_value.startswith("v=DKIM1; k=rsa; p=MII")
    assert "not checked: DNS unreachable" in ran.out
    for line in (
        "SPF not checked: bounces.voip.example TXT v=spf1 a:",
        f"DKIM not checked: nd1._domainkey.voip.example TXT {dkim_value}",
        "DMARC not checked: _dmarc.voip.example TXT v=DMARC1;",
        "MX not checked: bounces.voip.example MX 10 ",
    ):
        assert line in ran.out, (line, ran.out)


async def test_a_wrong_password_names_auth(tmp_path: Path) -> None:
    relay, accounts, ca_file = auth_relay(tmp_path, PASSWORD)
    async with relay as sink:
        ran = await _test_email(_config(tmp_path, sink.port, ca_file, "wrong-pass"), "a@b.example")
    assert ran.code == 1
    assert ran.err.startswith("test-email failed at AUTH: "), ran.err
    assert "535" in ran.err
    assert "wrong-pass" not in ran.out + ran.err
    assert accounts.logins == []
    assert sink.messages == []


async def test_a_refused_recipient_names_rcpt(tmp_path: Path) -> None:
    relay, _accounts, ca_file = auth_relay(tmp_path, PASSWORD)
    async with relay as sink:
        sink.rcpt_replies.append("550 5.1.1 no such user here")
        ran = await _test_email(_config(tmp_path, sink.port, ca_file, PASSWORD), "x@b.example")
    assert ran.code == 1
    assert ran.err.strip() == "test-email failed at RCPT TO: 550 5.1.1 no such user here"
    assert "MAIL FROM:<bounce@bounces.voip.example>: 250" in ran.out
    assert sink.messages == []


async def test_a_relay_that_is_down_names_connect(tmp_path: Path) -> None:
    port = _dead_port()
    _, ca_file = certificates(tmp_path)
    ran = await _test_email(_config(tmp_path, port, ca_file, PASSWORD), "a@b.example")
    assert ran.code == relay_cli.EXIT_UNAVAILABLE
    assert ran.err.startswith(
        f"test-email failed at connect: Error connecting to 127.0.0.1 on port {port}"
    )
    assert "DNS records the sender domain needs" in ran.out  # still told what to publish


class FakeDns:
    """DNS as the world would answer it: a name and type to its records."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = records

    async def lookup(self, name: str, rdtype: str) -> list[str]:
        return self.records.get((name, rdtype), [])


async def test_published_records_are_found_missing_or_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = dkim_key(tmp_path)
    smtp = {"host": "relay.voip.example", "bounce_domain": "bounces.voip.example"}
    dkim = {"domain": "voip.example", "selector": "nd1", "private_key_file": str(key)}
    settings = load_config(
        tmp_path, base_config(tmp_path, "postgresql://unused/db", None, smtp=smtp, dkim=dkim)
    )
    records = records_needed(settings.smtp, settings.dkim)
    dns = FakeDns(
        {
            ("bounces.voip.example", "TXT"): ["v=spf1 mx a:relay.voip.example -all"],
            ("nd1._domainkey.voip.example", "TXT"): ["v=DKIM1; k=rsa; p=MIIBoldkey"],
            ("bounces.voip.example", "MX"): ["10 mx.voip.example"],
        }
    )
    await relay_cli.report_dns(records, dns)
    out = capsys.readouterr().out
    assert "SPF found: bounces.voip.example TXT v=spf1 a:relay.voip.example ~all" in out
    assert "DKIM differs: nd1._domainkey.voip.example" in out
    assert "published now: v=DKIM1; k=rsa; p=MIIBoldkey" in out
    assert "DMARC missing: _dmarc.voip.example" in out
    assert "MX found: bounces.voip.example" in out
    assert "not checked" not in out

    # The key as published: split into strings and spaced, as long TXT records are.
    dns.records[("nd1._domainkey.voip.example", "TXT")] = [records[1].value.replace("p=", "p= ")]
    dns.records[("bounces.voip.example", "TXT")] = ["v=spf1 include:_spf.other.example ~all"]
    await relay_cli.report_dns(records, dns)
    out = capsys.readouterr().out
    assert "DKIM found: " in out
    assert "SPF differs: " in out


async def test_the_operations_guide_commands(tmp_path: Path) -> None:
    """docs/operations.md "Proving the relay": its [smtp] block and its command, with the
    test's relay, CA file and config in place of the guide's."""
    relay, accounts, ca_file = auth_relay(tmp_path, PASSWORD)
    async with relay as sink:
        places = {
            "relay.voip.example": "127.0.0.1",
            "587": str(sink.port),
            "/etc/notifyd/relay-ca.pem": str(ca_file),
        }
        smtp_block = snippet("test-email-smtp", OPERATIONS)
        for doc, here in places.items():
            smtp_block = smtp_block.replace(doc, here)
        smtp: dict[str, Any] = tomllib.loads(smtp_block)["smtp"]
        config = base_config(tmp_path, "postgresql://unused/db", sink.port, smtp=smtp)
        path = write_config(tmp_path / "notifyd.toml", config)
        command = snippet("test-email", OPERATIONS).replace("/etc/notifyd/notifyd.toml", str(path))
        ran = await run(
            ["bash", "-euo", "pipefail", "-c", command],
            env={"NOTIFYD_SMTP_PASSWORD": PASSWORD},
            timeout=40,
        )
        await sink.wait_for(1)
    assert ran.code == 0, ran.err
    assert accounts.logins == ["notifyd"]
    assert "AUTH PLAIN as notifyd: 235" in ran.out
    assert "sent: the relay accepted the message" in ran.out
    # The guide's sample transcript: the same steps, in the same order, as this one.
    shown = snippet("test-email-output", OPERATIONS).splitlines()
    assert [_step(line) for line in ran.out.splitlines()[: len(shown)]] == [
        _step(line) for line in shown
    ]


def _step(line: str) -> str:
    """A transcript line's step ("EHLO", "  certificate issuer", "DATA"), without the
    values that differ between hosts and relays (names, addresses, sizes)."""
    label = line.split(":", 1)[0]
    if label.startswith("EHLO "):  # the host's own name follows
        return "EHLO"
    return " ".join(word for word in label.split(" ") if not re.search(r"[.\d(]", word))


async def test_the_marketing_stream_leaves_by_its_own_relay_and_sender(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    marketing = {
        "host": "127.0.0.1",
        "port": smtp_sink.port,
        "sender": "Oferte <oferte@news.voip.example>",
    }
    # [smtp] itself names a relay that is down: only the stream's may be used.
    config = base_config(
        tmp_path, "postgresql://unused/db", _dead_port(), smtp__streams__marketing=marketing
    )
    path = write_config(tmp_path / "notifyd.toml", config)
    ran = await _test_email(path, "ana@client.example", "--stream", "marketing")
    assert ran.code == 0, ran.err
    assert f"connect: 127.0.0.1:{smtp_sink.port} (no TLS" in ran.out
    assert "AUTH" not in ran.out  # no username: no login
    assert "_dmarc.news.voip.example" in ran.out
    (message,) = await smtp_sink.wait_for(1)
    assert message["From"] == "Oferte <oferte@news.voip.example>"
    assert message["X-Notifyd-Stream"] == "marketing"
    assert smtp_sink.envelopes == [("oferte@news.voip.example", ["ana@client.example"])]
