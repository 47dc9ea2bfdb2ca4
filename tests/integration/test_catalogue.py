"""The whole event catalogue end to end (SPEC §4-§5): signed webhook in, email out of a real
daemon into a real SMTP server, with PostgreSQL behind it. Every email is checked strictly
(see catalogue_support.check_mail): RFC 5322/MIME under `policy.strict`, text and HTML
parts, well-formed HTML, `Auto-Submitted`, one Message-ID."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from notifyd.catalogue.samples import sample_event, sample_pdf, sample_wav
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    WAIT,
    base_config,
    load_config,
    running_daemon,
    write_config,
)
from tests.integration.catalogue_support import (
    FAST_DELIVERY,
    NO_QUIET_HOURS,
    Mail,
    RawSink,
    check_mail,
    mail_number,
    post_ok,
)
from tests.integration.queue_support import settled_notices

RON_THRESHOLDS = {"low": "5.00", "critical": "1.00", "hysteresis": "1.00"}
# 08:15 UTC is 10:15 in Bucharest (EET, UTC+2, in November).
AT = "2026-11-20T08:15:00+00:00"
LOCAL_AT = {"ro": "20 noiembrie 2026, 10:15", "en": "20 November 2026, 10:15"}
EXPIRES = "2026-11-20T09:15:00+00:00"
LOCAL_EXPIRES = {"ro": "20 noiembrie 2026, 11:15", "en": "20 November 2026, 11:15"}
LONG_DATE = {"ro": "20 noiembrie 2026", "en": "20 November 2026"}
CALLER = "+40721555123"
CALLER_SHOWN = "+40 721 555 123"
CALLED = "+40215550100"
CALLED_SHOWN = "+40 21 555 0100"
FAX_SHOWN = "+40 21 555 0199"
OLD_EMAIL = "maria@client.example"
NEW_EMAIL = "maria.new@client.example"


def money(amount: str, lang: str) -> str:
    """How the templates show an amount in RON (no-break spaces already made plain)."""
    return f"{amount.replace('.', ',')} RON" if lang == "ro" else f"RON {amount}"


@dataclass
class Expect:
    """One event and the single email it must give."""

    event: dict[str, Any]
    # In both the text part and the visible text of the HTML part.
    both: list[str]
    subject: list[str] = field(default_factory=list)
    text_only: list[str] = field(default_factory=list)
    html_only: list[str] = field(default_factory=list)
    kind: str = ""
    attachment: tuple[str, str] | None = None  # (content type, file name suffix)


def catalogue(lang: str, account: str) -> list[Expect]:
    """Every event type that sends one email by itself, with what the email must say."""
    ro = lang == "ro"
    return [
        Expect(
            sample_event(
                "call.missed",
                account,
                call_id=f"{account}-call-1",
                caller_number=CALLER,
                caller_name="Ion Ionescu",
                called_number=CALLED,
                extension="101",
                started_at=AT,
                ring_seconds=25,
            ),
            both=[CALLER_SHOWN, CALLED_SHOWN, "Ion Ionescu", LOCAL_AT[lang], "101", "25"],
            subject=["Ion Ionescu", CALLED_SHOWN],
        ),
        Expect(
            sample_event(
                "voicemail.received",
                account,
                call_id=f"{account}-vm-1",
                caller_number=CALLER,
                caller_name="Ion Ionescu",
                received_at=AT,
                duration_seconds=14,
                transcript="Bună ziua, vă rog să mă sunați înapoi.",
            ),
            both=[
                CALLER_SHOWN,
                "Ion Ionescu",
                "101",
                LOCAL_AT[lang],
                "14 secunde" if ro else "14 seconds",
                "vă rog să mă sunați înapoi",
                "msg0001.wav",
            ],
            subject=["Ion Ionescu"],
            attachment=("audio/wav", ".wav"),
        ),
        Expect(
            sample_event("fax.received", account, received_at=AT, pages=1),
            both=[FAX_SHOWN, LOCAL_AT[lang], "PDF"],
            subject=[FAX_SHOWN, "1 pagină" if ro else "1 page"],
            attachment=("application/pdf", ".pdf"),
        ),
        Expect(
            sample_event("fax.sent", account, sent_at=AT, pages=3),
            both=[FAX_SHOWN, LOCAL_AT[lang]],
            subject=[FAX_SHOWN, "3 pagini" if ro else "3 pages"],
        ),
        Expect(
            sample_event("fax.failed", account, sent_at=AT, reason="busy"),
            both=[FAX_SHOWN, LOCAL_AT[lang], "busy"],
            subject=[FAX_SHOWN],
        ),
        Expect(
            sample_event("account.password_changed", account, changed_at=AT),
            both=[LOCAL_AT[lang], "198.51.100.23", "Mozilla/5.0 (X11; Linux x86_64)"],
        ),
        Expect(
            sample_event(
                "account.password_reset_requested",
                account,
                reset_url="https://portal.voip.example/reset/3f9c1d2e",
                expires_at=EXPIRES,
            ),
            both=[LOCAL_EXPIRES[lang], "198.51.100.23"],
            # The HTML part links it from a button (a raw URL cannot wrap on a phone).
            text_only=["https://portal.voip.example/reset/3f9c1d2e"],
        ),
        Expect(
            sample_event("account.pin_created", account, created_at=AT),
            both=[LOCAL_AT[lang], "198.51.100.23"],
        ),
        Expect(
            sample_event(
                "account.ip_allowlist_changed",
                account,
                previous=["203.0.113.10", "192.0.2.7"],
                current=["203.0.113.10", "198.51.100.0/24"],
            ),
            both=["198.51.100.0/24", "192.0.2.7", "203.0.113.10", "admin"],
        ),
        Expect(
            sample_event(
                "usage.daily_limit_exceeded",
                account,
                limit="50.00",
                spent="52.35",
                currency="RON",
                date="2026-11-20",
            ),
            both=[money("50.00", lang), money("52.35", lang), LONG_DATE[lang]],
            subject=[money("50.00", lang)],
        ),
        Expect(
            sample_event("billing.balance_updated", account, balance="3.20", currency="RON"),
            both=[money("3.20", lang), money("5.00", lang)],
            subject=[money("3.20", lang)],
            kind="credit.low",
        ),
        Expect(
            sample_event(
                "billing.credit_added",
                account,
                amount="50.00",
                currency="RON",
                new_balance="53.20",
                method="card",
            ),
            both=[money("50.00", lang), money("53.20", lang), "card"],
            subject=[money("50.00", lang)],
        ),
        Expect(
            sample_event(
                "billing.payment_confirmed",
                account,
                payment_id="pay_8842",
                amount="119.00",
                currency="RON",
                invoice_number="VOIP-2026-0042",
                paid_at=AT,
            ),
            both=[money("119.00", lang), "pay_8842", "VOIP-2026-0042", LOCAL_AT[lang]],
            subject=[money("119.00", lang)],
        ),
    ]


def missing(mail: Mail, expect: Expect) -> list[str]:
    """What the email should say and does not."""
    problems = []
    for value in expect.both + expect.text_only:
        if value not in mail.text:
            problems.append(f"text lacks {value!r}")
    for value in expect.both + expect.html_only:
        if value not in mail.html_text:
            problems.append(f"html lacks {value!r}")
    for value in expect.subject:
        if value not in mail.subject:
            problems.append(f"subject {mail.subject!r} lacks {value!r}")
    return problems


async def notice_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM notices")
    return count


@pytest.mark.parametrize("lang", ["ro", "en"])
async def test_every_event_type_gives_its_email_in_the_subscribers_language(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection, lang: str
) -> None:
    account = f"acc-{lang}"
    config = base_config(
        tmp_path,
        database_url,
        sink.port,
        delivery=FAST_DELIVERY,
        defaults=NO_QUIET_HOURS,
        thresholds__RON=RON_THRESHOLDS,
    )
    # The language comes from account.created, not from [defaults].
    config["defaults"]["language"] = "en" if lang == "ro" else "ro"
    settings = load_config(tmp_path, config)
    problems: list[str] = []
    async with running_daemon(settings) as daemon:
        await post_ok(
            daemon,
            sample_event(
                "account.created",
                account,
                email=OLD_EMAIL,
                name="Maria Ionescu",
                username="maria.ionescu",
                language=lang,
            ),
        )
        welcome = await mail_number(sink, 1)
        problems += [
            f"account.created: {p}"
            for p in missing(welcome, Expect({}, both=["maria.ionescu", "Maria Ionescu"]))
        ]

        expected = catalogue(lang, account)
        for number, expect in enumerate(expected, start=2):
            await post_ok(daemon, expect.event)
            mail = await mail_number(sink, number)
            label = expect.kind or expect.event["type"]
            problems += [f"{label}: {p}" for p in missing(mail, expect)]
            assert mail.message["To"] == OLD_EMAIL
            assert mail.message["Content-Language"] == lang
            files = [
                (part.get_content_type(), part.get_filename() or "") for part in mail.attachments
            ]
            if expect.attachment is None:
                assert files == [], (label, files)
            else:
                assert len(files) == 1, (label, files)
                assert files[0][0] == expect.attachment[0], (label, files)
                assert files[0][1].endswith(expect.attachment[1]), (label, files)
        sent = len(expected) + 1

        # A new name only updates the subscriber: no email.
        before = await notice_count(db)
        await post_ok(daemon, sample_event("account.updated", account, name="Maria Popescu"))
        assert await notice_count(db) == before

        # A new address: the change is told to both the old and the new address.
        await post_ok(daemon, sample_event("account.updated", account, email=NEW_EMAIL))
        await sink.wait_for(sent + 2)
        changed = [check_mail(raw) for raw in sink.raws[sent : sent + 2]]
        sent += 2
        by_recipient = {str(mail.message["To"]): mail for mail in changed}
        assert set(by_recipient) == {OLD_EMAIL, NEW_EMAIL}
        for mail in changed:
            assert OLD_EMAIL in mail.text
            assert NEW_EMAIL in mail.text
            assert NEW_EMAIL in mail.html_text
        assert by_recipient[OLD_EMAIL].subject != by_recipient[NEW_EMAIL].subject
        # The name given by the update is the one used from now on.
        assert "Maria Popescu" in by_recipient[NEW_EMAIL].text

        # Closing: its notice goes to the current address; then no more billing notices,
        # while mandatory security notices still go out.
        await post_ok(daemon, sample_event("account.closed", account, closed_at=AT))
        closing = await mail_number(sink, sent + 1)
        sent += 1
        assert closing.message["To"] == NEW_EMAIL
        assert LOCAL_AT[lang] in closing.text
        payments_before = await db.fetchval(
            "SELECT count(*) FROM notices WHERE kind = 'billing.payment_confirmed'"
        )
        await post_ok(
            daemon,
            sample_event("billing.payment_confirmed", account, payment_id="pay_after_close"),
        )
        await post_ok(daemon, sample_event("account.password_changed", account, changed_at=AT))
        security = await mail_number(sink, sent + 1)
        sent += 1
        # A billing notice queued anyway would be sent before this returns (and counted).
        await settled_notices(db)

    assert problems == []
    assert len(sink.messages) == sent
    assert security.message["To"] == NEW_EMAIL
    assert "pay_after_close" not in security.text
    assert payments_before == 1
    assert (
        await db.fetchval("SELECT count(*) FROM notices WHERE kind = 'billing.payment_confirmed'")
        == 1
    )
    rows = await db.fetch("SELECT kind, language, state FROM notices ORDER BY created_at")
    assert {row["language"] for row in rows} == {lang}
    assert {row["state"] for row in rows} == {"sent"}
    assert [row["kind"] for row in rows] == [
        "account.created",
        *[e.kind or e.event["type"] for e in catalogue(lang, account)],
        "account.email_changed",
        "account.email_changed",
        "account.closed",
        "account.password_changed",
    ]
    # Every email went to exactly one recipient, the one in its To header.
    for message, (_sender, recipients) in zip(sink.messages, sink.envelopes, strict=True):
        assert recipients == [message["To"]]
    assert len({m["Message-ID"] for m in sink.messages}) == sent


# -- validation: one invalid sample per rule --------------------------------------------------


def _inline(filename: str, content_type: str, data: bytes) -> dict[str, str]:
    return {
        "filename": filename,
        "content_type": content_type,
        "data_base64": base64.b64encode(data).decode(),
    }


def _without(event: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        del event["data"][key]
    return event


def invalid_cases() -> list[tuple[str, dict[str, Any], str]]:
    """(what is wrong, the event, the field the 422 must name)."""
    wav = _inline("msg.wav", "audio/wav", sample_wav())
    return [
        # Any text is a caller ID (a name, a SIP URI, "anonymous"); an object is not.
        ("caller number not text", sample_event("call.missed", caller_number={"num": "101"}),
         "data.caller_number"),
        ("called number empty", sample_event("call.missed", called_number=" "),
         "data.called_number"),
        ("called number missing", _without(sample_event("call.missed"), "called_number"),
         "data.called_number"),
        ("call_id missing", _without(sample_event("call.missed"), "call_id"), "data.call_id"),
        ("ring seconds negative", sample_event("call.missed", ring_seconds=-1),
         "data.ring_seconds"),
        ("to_voicemail not a boolean", sample_event("call.missed", to_voicemail="maybe"),
         "data.to_voicemail"),
        ("time without a zone", sample_event("call.missed", started_at="2026-11-20T08:15:00"),
         "data.started_at"),
        ("account id with a line break", sample_event("call.missed", "acc\n1"),
         "data.account_id"),
        # 0.1 + 0.2 as a float: a JSON number that does not read as one amount.
        ("amount as an inexact JSON number",
         sample_event("billing.credit_added", amount=0.30000000000000004), "data.amount"),
        ("amount with a decimal comma", sample_event("billing.credit_added", amount="12,50"),
         "data.amount"),
        ("currency XXX1", sample_event("billing.payment_confirmed", currency="XXX1"),
         "data.currency"),
        ("currency RUB?", sample_event("usage.daily_limit_exceeded", currency="RUB?"),
         "data.currency"),
        ("unknown currency", sample_event("billing.balance_updated", currency="ABC"),
         "data.currency"),
        ("impossible date", sample_event("usage.daily_limit_exceeded", date="2026-13-01"),
         "data.date"),
        ("bad IP address", sample_event("account.password_changed", source_ip="999.1.1.1"),
         "data.source_ip"),
        ("bad CIDR in previous",
         sample_event("account.ip_allowlist_changed", previous=["10.0.0.0/33"]),
         "data.previous"),
        ("not an address in current",
         sample_event("account.ip_allowlist_changed", current=["pbx.example"]),
         "data.current"),
        ("reset URL not http(s)",
         sample_event("account.password_reset_requested", reset_url="ftp://x"),
         "data.reset_url"),
        ("no pages", sample_event("fax.received", pages=0), "data.pages"),
        ("audio with data_base64 and url",
         sample_event("voicemail.received", audio={**wav, "url": "https://127.0.0.1/m.wav"}),
         "data.audio"),
        ("audio with neither data_base64 nor url",
         sample_event("voicemail.received",
                      audio={"filename": "m.wav", "content_type": "audio/wav"}),
         "data.audio"),
        ("audio whose bytes are a PDF",
         sample_event("voicemail.received",
                      audio=_inline("msg.wav", "audio/wav", sample_pdf())),
         "data.audio"),
        ("fax document that is a WAV",
         sample_event("fax.received", document=_inline("fax.pdf", "application/pdf",
                                                       sample_wav())),
         "data.document"),
        ("audio not base64",
         sample_event("voicemail.received", audio={**wav, "data_base64": "not base64!"}),
         "data.audio.data_base64"),
        ("audio file name that is no name",
         sample_event("voicemail.received", audio={**wav, "filename": ".."}),
         "data.audio.filename"),
        ("audio content type not a MIME type",
         sample_event("voicemail.received", audio={**wav, "content_type": "audio wav"}),
         "data.audio.content_type"),
        ("transcript with a control character",
         sample_event("voicemail.received", transcript="sunați\x07 înapoi"),
         "data.transcript"),
        ("invalid email", sample_event("account.created", email="not-an-address"),
         "data.email"),
        ("email with a header after a line break",
         sample_event("account.created", email="ana@client.example\r\nBcc: x@example.com"),
         "data.email"),
        ("user name with a line break",
         sample_event("account.created", username="ana\nBcc: victim@example.com"),
         "data.username"),
        # A language or zone notifyd cannot map is left to [defaults], not refused: a refused
        # account.created loses every notice of the account (test_billing_values).
        ("account.updated with nothing to update",
         _without(sample_event("account.updated"), "name"), "data"),
        ("unknown event type", {**sample_event("fax.sent"), "type": "fax.exploded"}, "type"),
    ]  # fmt: skip


async def test_each_validation_rule_answers_422_naming_the_field(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    mismatches: list[str] = []
    cases = invalid_cases()
    async with running_daemon(settings) as daemon:
        for what, event, field_name in cases:
            secret = BILLING_SECRET
            source = "billing"
            status, body = await daemon.post(source, event, secret)
            fields = body.get("fields", {})
            named = [key for key in fields if key == field_name or key.startswith(field_name + ".")]
            if status != 422 or not named:
                mismatches.append(f"{what}: {status} {json.dumps(body)}")
            elif body["error"] not in ("invalid_event", "unknown_type"):
                mismatches.append(f"{what}: error code {body['error']!r}")
        # The valid versions of the same samples are accepted: the 422s come from the fault.
        for event_type in ("call.missed", "voicemail.received", "fax.received"):
            status, body = await daemon.post("pbx", sample_event(event_type), PBX_SECRET)
            if status != 202:
                mismatches.append(f"valid {event_type}: {status} {json.dumps(body)}")
    assert mismatches == []
    assert len(cases) == 32
    assert await db.fetchval("SELECT count(*) FROM events") == 3


# -- header injection ---------------------------------------------------------------------------

MARKUP = '<a href="https://evil.example">Ion</a> & Co'


async def test_line_breaks_in_names_cannot_inject_headers(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = load_config(
        tmp_path,
        base_config(tmp_path, database_url, sink.port, delivery=FAST_DELIVERY),
    )
    injected = "Ion\r\nBcc: victim@example.com"
    events = [
        sample_event(
            "account.created",
            "acc-inj",
            email="maria@client.example",
            name="Maria\nBcc: victim@example.com",
            language="en",
        ),
        sample_event("call.missed", "acc-inj", call_id="inj-1", caller_name=injected),
        sample_event(
            "voicemail.received",
            "acc-inj",
            call_id="inj-2",
            caller_name="Ion\nTo: victim@example.com",
        ),
        # Markup in a name is text in the HTML part, not markup.
        sample_event("call.missed", "acc-inj", call_id="inj-3", caller_name=MARKUP),
    ]
    async with running_daemon(settings) as daemon:
        mails = []
        for number, event in enumerate(events, start=1):
            await post_ok(daemon, event)
            mails.append(await mail_number(sink, number))

    assert sink.envelopes == [("notificari@voip.example", ["maria@client.example"])] * 4
    assert sink.rcpt_commands == 4
    for mail, raw in zip(mails, sink.raws, strict=True):
        headers = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        names = [line.split(":", 1)[0].lower() for line in headers.split("\r\n")]
        assert "bcc" not in names
        assert names.count("to") == 1
        assert mail.message.get_all("Bcc") is None
        assert mail.message.get_all("To") == ["maria@client.example"]
    # Control characters became spaces: the text is kept, on one line.
    assert "Hello Maria Bcc: victim@example.com," in mails[0].text
    assert "Ion Bcc: victim@example.com" in mails[1].subject
    assert "Ion To: victim@example.com" in mails[2].subject
    assert MARKUP in mails[3].html_text
    assert MARKUP in mails[3].subject
    assert 'href="https://evil.example"' not in mails[3].html
    assert "&lt;a href=" in mails[3].html
    stored = await db.fetchval(
        "SELECT data->>'caller_name' FROM events WHERE data->>'call_id' = 'inj-1'"
    )
    assert stored == "Ion Bcc: victim@example.com"


# -- template overrides -------------------------------------------------------------------------


def _packaged(name: str) -> str:
    return (resources.files("notifyd") / "templates" / name).read_text(encoding="utf-8")


async def test_an_override_folder_template_is_used(
    tmp_path: Path, database_url: str, sink: RawSink
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    original = _packaged("call.missed.en.txt")
    assert "You have a missed call." in original
    (folder / "call.missed.en.txt").write_text(
        original.replace("You have a missed call.", "Our own words: somebody rang you."),
        encoding="utf-8",
    )
    settings = load_config(
        tmp_path,
        base_config(
            tmp_path,
            database_url,
            sink.port,
            delivery=FAST_DELIVERY,
            templates={"folder": str(folder)},
        ),
    )
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", "acc-tpl", language="en"))
        await post_ok(daemon, sample_event("call.missed", "acc-tpl", call_id="tpl-1"))
        mail = await mail_number(sink, 2)
    assert "Our own words: somebody rang you." in mail.text
    assert "You have a missed call." not in mail.text
    # Only the overridden file changed: the HTML part is still the packaged one.
    assert "You have a missed call." in mail.html_text


def _check_config(tmp_path: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    config = base_config(
        tmp_path, "postgresql://nobody@127.0.0.1:1/none", None, templates={"folder": str(folder)}
    )
    path = write_config(tmp_path / "check.toml", config)
    return subprocess.run(
        [sys.executable, "-m", "notifyd", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_refuses_a_broken_override_naming_the_template(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    template = folder / "call.missed.en.txt"
    template.write_text(_packaged("call.missed.en.txt"), encoding="utf-8")
    good = _check_config(tmp_path, folder)
    template.write_text(
        _packaged("call.missed.en.txt").replace("{% endif +%}", "{% endfi %}", 1),
        encoding="utf-8",
    )
    broken = _check_config(tmp_path, folder)
    assert good.returncode == 0, good.stderr
    assert broken.returncode == 78, (broken.returncode, broken.stdout, broken.stderr)
    assert "call.missed.en" in broken.stderr
    assert "[templates] folder" in broken.stderr
    # Only the broken template is named.
    assert "call.missed.ro" not in broken.stderr
    assert "voicemail" not in broken.stderr


# -- shutdown (found while running the tests above) ---------------------------------------------


async def test_stop_finishes_when_it_lands_as_the_listener_probe_completes(
    tmp_path: Path, database_url: str
) -> None:
    # The race is made certain instead of left to chance: asyncpg calls a query logger (a
    # plain asyncpg feature, nothing replaced) in the loop iteration after the probe's reply,
    # before the listen task resumes; stop() starts right there.
    settings = load_config(
        tmp_path, base_config(tmp_path, database_url, None, delivery={"poll_seconds": 0.05})
    )
    async with running_daemon(settings) as running:
        dispatcher = running.daemon.dispatcher
        assert dispatcher is not None
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            while dispatcher._listener is None:
                await asyncio.sleep(0.01)
        listener = dispatcher._listener
        stopping: asyncio.Future[asyncio.Task[None]] = loop.create_future()

        def on_query(record: Any) -> None:
            if record.query == "SELECT 1" and not stopping.done():
                stopping.set_result(loop.create_task(dispatcher.stop(1.0)))

        listener.add_query_logger(on_query)
        async with asyncio.timeout(WAIT):
            stop = await stopping
        done, _ = await asyncio.wait([stop], timeout=2)
        if not done:
            # Unstick it so the test ends: a second cancel does not meet the race again.
            dispatcher._tasks[1].cancel()
            await asyncio.wait([stop], timeout=WAIT)
    assert stop in done, "Dispatcher.stop() did not return within 2 s"
