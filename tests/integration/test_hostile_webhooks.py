"""Hostile webhook input, against a running daemon with a real PostgreSQL and SMTP server.

1. Properties (hypothesis) over POST /v1/webhooks/{source}: random bodies (bytes, text in
   several encodings, JSON of any shape, valid-looking events with wrong types), header
   sets, sizes, signed, signed with another secret, tampered or unsigned. Never a 5xx, and
   nothing accepted (2xx) unless signed with the source's secret.
2. A header-injection and XSS corpus through every text field of every event type that
   accepts it: the emails the SMTP server receives carry no injected header, an RFC 2047
   encoded-word look-alike is shown as the text it is (never decoded into something that
   looks like a header), and the HTML parts escape everything.

A few hundred generated requests in `make test`; NOTIFYD_NIGHTLY=1 runs 20,000.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import http.client
import json
import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from notifyd.catalogue.events import CATALOGUE, InvalidEvent, MalformedBody, parse_event
from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    OTHER_SECRET,
    PBX_SECRET,
    WAIT,
    SmtpSink,
    base_config,
    load_config,
    running_daemon,
)
from tests.integration.queue_support import settled_notices
from tests.unit.rendering_support import bidi_open_at_line_ends

NIGHTLY = os.environ.get("NOTIFYD_NIGHTLY") == "1"
EXAMPLES = 20_000 if NIGHTLY else 300

# -- 1. properties over the endpoint ----------------------------------------------------------


class Poster:
    """Blocking HTTP/1.1 from hypothesis's thread to the daemon on the test's event loop:
    http.client sends header values as given (bytes too), which aiohttp's client would
    normalise or refuse."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []

    def close(self) -> None:
        for conn in self.opened:
            conn.close()

    def post(self, path: str, body: bytes, headers: list[tuple[str, str | bytes]]) -> int:
        for attempt in range(2):
            conn: http.client.HTTPConnection | None = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
                self.local.conn = conn
                self.opened.append(conn)
            try:
                conn.putrequest("POST", path, skip_accept_encoding=True)
                for name, value in headers:
                    # Line breaks would end the header block (http.client refuses them).
                    if isinstance(value, bytes):
                        value = value.replace(b"\r", b" ").replace(b"\n", b" ")
                    else:
                        value = value.replace("\r", " ").replace("\n", " ")
                    conn.putheader(name, value)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self.local.conn = None
                return response.status
            except (http.client.HTTPException, ConnectionError):
                # The server closed a kept-alive connection (after a 4xx it may): once more.
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


def _event_bodies() -> st.SearchStrategy[Any]:
    """JSON values shaped like events, with fields of the wrong type or absurd values."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.text(max_size=40),
        st.sampled_from(["", "anonymous", "+40721555123", "12.50", "RON", "\u202e", "\ufeff"]),
    )
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=12,
    )
    types = st.one_of(
        st.sampled_from(sorted(CATALOGUE)),
        st.sampled_from(sorted(CATALOGUE)),
        st.text(max_size=30),
        values,
    )

    @st.composite
    def shaped(draw: st.DrawFn) -> Any:
        event_type = draw(types)
        template = (
            sample_event(event_type, "acc-fuzz")
            if isinstance(event_type, str) and event_type in CATALOGUE
            else {"type": event_type, "timestamp": "2026-11-22T10:15:00Z", "data": {}}
        )
        event = copy.deepcopy(template)
        if draw(st.integers(0, 3)) == 0:
            return event  # as a PBX sends it: the valid requests must be accepted too
        data = event["data"]
        keys = [*sorted(data), "account_id", "unexpected"]
        for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
            if draw(st.booleans()):
                data[key] = draw(values)
            else:
                data.pop(key, None)
        if draw(st.booleans()):
            event["timestamp"] = draw(values)
        if draw(st.integers(0, 9)) == 0:
            event["data"] = draw(values)
        return event

    return shaped()


def _bodies() -> st.SearchStrategy[bytes]:
    def encode(value: Any, encoding: str) -> bytes:
        text = json.dumps(value, ensure_ascii=encoding == "ascii")
        if encoding == "ascii":
            return text.encode("ascii")
        # What an encoding cannot hold is replaced (latin-1) or kept (lone surrogates).
        return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")

    encodings = st.sampled_from(["utf-8", "ascii", "utf-16", "utf-32", "latin-1", "utf-8-sig"])
    json_bodies = st.builds(encode, _event_bodies(), encodings)
    return st.one_of(
        json_bodies,
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
        # Deep nesting and sheer size, still small enough for hundreds of cases.
        st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
        st.integers(1, 300_000).map(lambda size: b'{"type": "' + b"a" * size + b'"}'),
        st.sampled_from(
            [
                b"",
                b"null",
                b"NaN",
                b'{"type": "call.missed", "data": {"account_id": "\\u0000"}}',
                b'{"type": "call.missed", "data": {"account_id": "\\ud800"}}',
                b'{"type": 1e999999}',
                b'{"a": 1, "a": 2}',
            ]
        ),
    )


_header_text = st.text(
    st.characters(blacklist_characters="\r\n\x00", max_codepoint=0xFF), max_size=60
)
_header_value = st.one_of(
    _header_text,
    st.binary(max_size=40).filter(lambda raw: b"\r" not in raw and b"\n" not in raw),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, list[tuple[str, str | bytes]], bool]:
    """(path, body, headers, validly signed for the source)."""
    source = draw(st.sampled_from(["pbx", "pbx", "billing", "nope", "p%62x", "..%2fadmin"]))
    body = draw(_bodies())
    webhook_id = draw(
        st.one_of(st.just(f"msg_{uuid.uuid4().hex}"), st.text(max_size=300), st.just(""))
    )
    moment = datetime.now(UTC) + timedelta(
        seconds=draw(st.sampled_from([0, 0, 0, -100, 250, -400, 10**6]))
    )
    secret = draw(st.sampled_from([PBX_SECRET, BILLING_SECRET, OTHER_SECRET, None]))
    headers: list[tuple[str, str | bytes]] = []
    signature = ""
    signable = webhook_id and webhook_id.isprintable() and len(webhook_id) <= 256
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if secret is not None and signable and text is not None:
        signature = Webhook(secret).sign(webhook_id, moment, text)
        tamper = draw(st.sampled_from(["none", "none", "none", "body", "id", "signature"]))
        if tamper == "body":
            body = body + b" "
        elif tamper == "id":
            webhook_id = webhook_id + "x"
        elif tamper == "signature":
            signature = signature[:-4] + ("AAA=" if not signature.endswith("AAA=") else "BBB=")
    else:
        tamper = "unsigned"
    valid = (
        # The path is percent-decoded before routing: "p%62x" is the source "pbx".
        secret == {"pbx": PBX_SECRET, "billing": BILLING_SECRET}.get(unquote(source))
        and bool(signature)
        and tamper == "none"
        and abs((moment - datetime.now(UTC)).total_seconds()) < 290
    )
    for name, value in [
        ("webhook-id", webhook_id),
        ("webhook-timestamp", str(int(moment.timestamp()))),
        ("webhook-signature", signature),
        ("Content-Type", "application/json"),
    ]:
        choice = draw(st.sampled_from(["keep"] * 12 + ["drop", "garble", "twice"]))
        if choice == "drop":
            if name != "Content-Type":
                valid = False
            continue
        if choice == "garble":
            value = draw(_header_value)  # type: ignore[assignment]
            valid = False
        if choice == "twice":
            headers.append((name, draw(_header_value)))
            valid = False
        if isinstance(value, str):
            # http.client sends str headers as latin-1: what cannot be is sent as bytes.
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                headers.append((name, value.encode("utf-8", "surrogatepass")))
                continue
        headers.append((name, value))
    for extra, extra_value in draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    ["X-Request-Id", "Content-Encoding", "Transfer-Encoding-X", "X-Forwarded-For"]
                ),
                _header_value,
            ),
            max_size=2,
        )
    ):
        headers.append((extra, extra_value))
        if extra == "Content-Encoding":
            valid = False
    return f"/v1/webhooks/{source}", body, headers, valid


@pytest.mark.timeout(4000 if NIGHTLY else 120)
async def test_no_input_makes_a_5xx_and_only_valid_signatures_are_accepted(
    tmp_path: Path, database_url: str
) -> None:
    config = load_config(tmp_path, base_config(tmp_path, database_url, None))
    seen: dict[int, int] = {}
    accepted_unsigned: list[tuple[str, bytes, list[Any]]] = []

    async with running_daemon(config) as daemon:
        assert daemon.daemon.port is not None
        poster = Poster(daemon.daemon.port)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(request=requests())
        def property_(request: tuple[str, bytes, list[tuple[str, str | bytes]], bool]) -> None:
            path, body, headers, valid = request
            status = poster.post(path, body, headers)
            seen[status] = seen.get(status, 0) + 1
            assert status < 500, (status, path, body[:200], headers)
            if 200 <= status < 300 and not valid:
                accepted_unsigned.append((path, body[:200], headers))
            assert not (200 <= status < 300) or valid, (status, path, body[:200], headers)

        try:
            await asyncio.wait_for(asyncio.to_thread(property_), 3600 if NIGHTLY else 90)
        finally:
            poster.close()
    assert accepted_unsigned == []
    # The generator reached the answers it is meant to: refusals of every kind, acceptances.
    assert {401, 404}.issubset(seen), seen
    assert seen.keys() & {400, 415, 422}, seen
    assert 202 in seen, seen


# -- 2. header injection and XSS through every templated field ---------------------------------

# Decodes to "X-Injected: yes": shown as this text, never as what it decodes to.
LOOK_ALIKE_B = "=?utf-8?b?" + base64.b64encode(b"X-Injected: yes").decode() + "?="
LOOK_ALIKE_Q = "=?utf-8?q?X-Injected:_yes?="
PAYLOADS = {
    "crlf": "Ion\r\nBcc: victim@attacker.example\r\nX-Injected: yes",
    "lf": "Ion\nX-Injected: yes\n\n<b>body</b>",
    "encoded-b": f"Ion {LOOK_ALIKE_B}",
    "encoded-q": f"{LOOK_ALIKE_Q} Ion",
    "encoded-crlf": "=?utf-8?b?" + base64.b64encode(b"x\r\nX-Injected: yes").decode() + "?=",
    "script": "<script>alert(1)</script>",
    "img": '"><img src=x onerror=alert(1)>',
    "attr": "' onmouseover='alert(1)' x='",
    "bidi": "Ion \u202egnp.exe \u2067x",  # an override and an isolate, both left open
    "entities": "&lt;script&gt; &amp;&#x3c;",
    # Cleaned to a space in names, refused (422) in identifiers: never stored, never a 500.
    "nul": "Ion\x00x\x1b[2J",
}
# Fields that are identifiers, numbers, times, money, addresses or URLs: refused or
# normalised by their validators, never shown as free text.
STRUCTURED = {"email", "language", "timezone"}


def hostile_event(event_type: str, account: str, payload: str) -> dict[str, Any]:
    """The sample event with `payload` in every text field that accepts it (each field
    tried alone through the parser, then all that passed at once)."""
    event = sample_event(event_type, account)
    if event_type == "call.missed":
        event["data"]["to_voicemail"] = False
    accepted: list[str] = []
    for key, value in list(event["data"].items()):
        if not isinstance(value, str) or key in STRUCTURED or key == "account_id":
            continue
        trial = copy.deepcopy(event)
        trial["data"][key] = payload
        try:
            parse_event(json.dumps(trial).encode())
        except (InvalidEvent, MalformedBody):
            continue
        accepted.append(key)
    for key in accepted:
        event["data"][key] = payload
    for attachment in ("audio", "document"):
        if attachment in event["data"]:
            trial = copy.deepcopy(event)
            trial["data"][attachment]["filename"] = payload + ".bin"
            try:
                parse_event(json.dumps(trial).encode())
            except (InvalidEvent, MalformedBody):
                continue
            event = trial
    return event


EXPECTED_HEADERS = {
    "from",
    "to",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "content-language",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "x-notifyd-stream",
    "mime-version",
    "content-type",
    "dkim-signature",
}


def _parts(message: EmailMessage) -> list[tuple[str, str]]:
    found = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            found.append((part.get_content_subtype(), str(part.get_content())))
    return found


def check_email(message: EmailMessage, raw_headers: bytes, label: str) -> list[str]:
    """What is wrong with one received email (made with PAYLOADS[label]), in words."""
    problems = []
    names = [name.lower() for name, _value in message.items()]
    if set(names) - EXPECTED_HEADERS or len(names) != len(set(names)):
        problems.append(f"unexpected headers: {names}")
    for line in raw_headers.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # a folded header's continuation
        name = line.partition(b":")[0].decode("ascii", "replace").lower()
        if name not in EXPECTED_HEADERS:
            problems.append(f"a header line no template writes: {line[:200]!r}")
    for name, value in message.items():
        decoded = str(value)
        if "\r" in decoded or "\n" in decoded or "\x00" in decoded or "\x1b" in decoded:
            problems.append(f"{name} decodes to several lines: {decoded!r}")
        # A look-alike must read as the text it is: what it would decode to never shows.
        shown = decoded.replace(LOOK_ALIKE_B, "").replace(LOOK_ALIKE_Q, "")
        if label.startswith("encoded") and "X-Injected: yes" in shown:
            problems.append(f"{name} decodes an encoded-word look-alike: {decoded!r}")
    texts = [("Subject", str(message["Subject"]))] + [(s, c) for s, c in _parts(message)]
    for where, text in texts:
        if bidi_open_at_line_ends(text):
            problems.append(f"{where}: a bidirectional override runs past its value: {text!r}")
    for part in message.walk():
        filename = part.get_filename()
        if filename is None:
            continue
        # Mail readers decode encoded words even inside a quoted filename parameter.
        shown = filename.replace(LOOK_ALIKE_B, "").replace(LOOK_ALIKE_Q, "")
        if (
            "\r" in filename
            or "\n" in filename
            or (label.startswith("encoded") and "X-Injected: yes" in shown)
        ):
            problems.append(f"an attachment's file name decodes a look-alike: {filename!r}")
    for subtype, content in _parts(message):
        if subtype != "html":
            continue
        lowered = content.lower()
        # Escaped, "onerror=alert(1)" is harmless text: it is the tags and quotes that count.
        for raw in ("<script", "<img", "onmouseover='", "<b>body"):
            if raw in lowered:
                problems.append(f"unescaped {raw!r} in the HTML part")
        if "&lt;script&gt; &amp;" in content:
            problems.append("an entity in the data was not escaped (&lt; shown as <)")
    return problems


class RawSink(SmtpSink):
    """Keeps each message's raw header block too: the parsed message hides how it was
    written."""

    raw: list[bytes]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or b""
        self.raw.append(content.split(b"\r\n\r\n", 1)[0])
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def raw_sink() -> Any:
    from tests.conftest import smtp_server

    sink = RawSink()
    sink.raw = []
    async with smtp_server(sink) as running:
        yield running


async def test_hostile_text_in_every_field_injects_no_header_and_no_html(
    tmp_path: Path, database_url: str, raw_sink: RawSink, db: asyncpg.Connection
) -> None:
    config = base_config(
        tmp_path,
        database_url,
        raw_sink.port,
        delivery={"hourly_cap": 0},
        thresholds__RON={"low": "10.00", "critical": "1.00", "hysteresis": "1.00"},
    )
    settings_ = load_config(tmp_path, config)
    posted: dict[str, list[str]] = {}
    # account.closed last: a closed account is sent nothing more.
    types = [*sorted(set(CATALOGUE) - {"account.created", "account.closed"}), "account.closed"]
    async with running_daemon(settings_) as daemon:
        for number, (label, payload) in enumerate(PAYLOADS.items()):
            account = f"acc-h{number}"
            created = hostile_event("account.created", account, payload)
            created["data"]["email"] = f"h{number}@client.example"
            created["data"]["language"] = "en" if number % 2 else "ro"
            status, body = await daemon.post("billing", created, BILLING_SECRET)
            assert status == 202, (label, body)
            for event_type in types:
                event = hostile_event(event_type, account, payload)
                secret = BILLING_SECRET if event_type.startswith(("billing", "account")) else ""
                status, body = await daemon.post(
                    "billing" if secret else "pbx", event, secret or PBX_SECRET
                )
                assert status == 202, (label, event_type, body)
                posted.setdefault(label, []).append(event_type)
        # Every email these events make (their notices were committed before each 202):
        # all sent once none is left to send, but for a missed call's wait for its
        # voicemail (120 s), which no test waits out.
        await settled_notices(db, later=timedelta(seconds=60), timeout=WAIT * 2)
    # At least one per payload and type that sends one.
    assert len(raw_sink.messages) >= len(PAYLOADS) * 10
    labels = {f"h{number}@client.example": label for number, label in enumerate(PAYLOADS)}
    problems = []
    for message, raw in zip(raw_sink.messages, raw_sink.raw, strict=True):
        label = labels[str(message["To"])]
        problems += [f"{label}: {problem}" for problem in check_email(message, raw, label)]
    assert not problems, "\n".join(problems)
