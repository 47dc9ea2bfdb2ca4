"""Values as billing systems really send them, end to end (SPEC §4), walked as a billing
integrator: a language as a locale ("en-GB", "ro_RO"), a time zone in lower case or as an
offset. account.created refused for one of them lost the welcome and every later notice of
the account (unknown account), so what can be mapped is, and what cannot is left to the
operator's [defaults] with a warning that names the field, never its value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from notifyd.catalogue.samples import sample_event
from tests.conftest import running_daemon
from tests.integration.catalogue_support import (
    SECRETS,
    RawSink,
    mail_number,
    post_ok,
    sending_settings,
)

# (language as sent, the language of the welcome email); the test config's default is "ro".
LANGUAGES = [
    ("en-GB", "en"),
    ("ro-RO", "ro"),
    ("RO", "ro"),
    ("ro_RO", "ro"),
    ("en-us", "en"),
    ("en_GB.UTF-8", "en"),
    ("de-DE", "ro"),  # not one we write in: the operator's default
]

# (time zone as sent, the zone kept: None is the operator's default)
ZONES = [
    ("UTC", "UTC"),
    ("Etc/GMT-2", "Etc/GMT-2"),
    ("europe/bucharest", "Europe/Bucharest"),
    (" Europe/Bucharest ", "Europe/Bucharest"),
    ("EET", "EET"),
    ("+02:00", "Etc/GMT-2"),
    ("-0500", "Etc/GMT+5"),
    ("GMT+2", None),  # two hours east to people, two hours west to POSIX: not guessed
    ("+05:30", None),  # no fixed zone of the tz database has it
    ("localtime", None),  # the server's zone, not the subscriber's
    ("Mars/Olympus_Mons", None),
]


async def test_a_locale_is_read_as_its_language_and_an_unknown_one_is_the_default(
    tmp_path: Path, database_url: str, sink: RawSink
) -> None:
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        for n, (sent, language) in enumerate(LANGUAGES, start=1):
            await post_ok(daemon, sample_event("account.created", f"acc-{n}", language=sent))
            welcome = await mail_number(sink, n)
            assert welcome.message["Content-Language"] == language, sent


async def test_a_time_zone_is_mapped_where_it_can_be_and_else_left_to_the_default(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        with structlog.testing.capture_logs() as logs:
            for n, (sent, _) in enumerate(ZONES, start=1):
                event = sample_event("account.created", f"acc-{n}", timezone=sent)
                await post_ok(daemon, event)
        await mail_number(sink, len(ZONES))
    rows = await db.fetch("SELECT account_id, timezone FROM subscribers")
    kept = {row["account_id"]: row["timezone"] for row in rows}
    assert [kept[f"acc-{n}"] for n in range(1, len(ZONES) + 1)] == [zone for _, zone in ZONES]
    warnings = [line for line in logs if "not understood" in line["event"]]
    assert len(warnings) == sum(zone is None for _, zone in ZONES)
    assert {tuple(line["fields"]) for line in warnings} == {("timezone",)}
    # The field is named, never its value: a sender may put anything in it.
    assert not [line for line in warnings if any(s in str(line) for s, _ in ZONES[-4:])]


async def test_an_update_with_only_a_language_not_understood_is_kept_and_changes_nothing(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, sample_event("account.created", "acc-1", language="en-GB"))
        await mail_number(sink, 1)
        update = {"type": "account.updated", "timestamp": "2026-12-05T10:00:00Z"}
        await post_ok(daemon, {**update, "data": {"account_id": "acc-1", "language": "de"}})
        await post_ok(daemon, {**update, "data": {"account_id": "acc-1", "language": "RO-ro"}})
    assert await db.fetchval("SELECT language FROM subscribers") == "ro"


# (event type, fields as a billing system or PBX writes them, what the English and the
# Romanian email show)
AMOUNTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("billing.credit_added", {"amount": 12.5, "new_balance": 20}, "€ 12.50", "12,50 EUR"),
    ("billing.credit_added", {"currency": "eur"}, "€ 50.00", "50,00 EUR"),
    # A per-minute rate's fraction of a cent: shown as billed, not rounded half to even.
    ("billing.credit_added", {"amount": "0.125", "currency": "RON"}, "RON 0.125", "0,125 RON"),
    ("usage.daily_limit_exceeded", {"spent": "50.005"}, "RON 50.005", "50,005 RON"),
    (
        "billing.payment_confirmed",
        {"payment_id": 4471, "invoice_number": 2026042},
        "RON 119.00",
        "119,00 RON",
    ),
    (
        "usage.daily_limit_exceeded",
        {"date": "20261205", "limit": 50},
        "5 December 2026",
        "5 decembrie 2026",
    ),
    (
        "usage.daily_limit_exceeded",
        {"date": "2026-12-05T23:30:00+02:00"},
        "5 December 2026",
        "5 decembrie 2026",
    ),
]


@pytest.mark.parametrize(("event_type", "fields", "english", "romanian"), AMOUNTS)
async def test_billing_values_as_sent_are_taken_and_shown_right_in_both_languages(
    tmp_path: Path,
    database_url: str,
    sink: RawSink,
    event_type: str,
    fields: dict[str, Any],
    english: str,
    romanian: str,
) -> None:
    if "amount" in fields and "currency" not in fields:
        fields = {**fields, "currency": "EUR"}
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        # A billing system's own account numbers are integers, written unquoted.
        await post_ok(daemon, sample_event("account.created", "1001", language="en"))
        await post_ok(daemon, sample_event("account.created", "1002", language="ro"))
        await mail_number(sink, 2)
        for n, account in enumerate((1001, 1002), start=3):
            event = sample_event(event_type, "-", **fields)
            await post_ok(daemon, {**event, "data": {**event["data"], "account_id": account}})
            mail = await mail_number(sink, n)
            assert (english if account == 1001 else romanian) in mail.text, mail.text


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("amount", 0.30000000000000004, "decimal string"),  # 0.1 + 0.2 in a float
        ("amount", "1,234.50", "no thousands separators"),
        ("currency", "XYZ", "ISO 4217"),
    ],
)
async def test_an_amount_that_cannot_be_read_exactly_is_refused_saying_why(
    tmp_path: Path, database_url: str, sink: RawSink, field: str, value: Any, says: str
) -> None:
    event = sample_event("billing.credit_added", "acc-1", **{field: value})
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        status, body = await daemon.post("billing", event, SECRETS["billing"])
    assert status == 422
    assert says in body["fields"][f"data.{field}"]


async def test_a_zone_given_as_an_offset_is_shown_as_that_offset(
    tmp_path: Path, database_url: str, sink: RawSink
) -> None:
    # Kept as Etc/GMT-2, whose POSIX sign reads to a subscriber as two hours west of GMT.
    welcome = sample_event("account.created", "acc-1", language="en", timezone="+02:00")
    called = sample_event("call.missed", "acc-1", started_at="2026-12-05T10:00:00Z")
    async with running_daemon(sending_settings(tmp_path, database_url, sink)) as daemon:
        await post_ok(daemon, welcome)
        await mail_number(sink, 1)
        await post_ok(daemon, called)
        mail = await mail_number(sink, 2)
    assert "5 December 2026, 12:00 (UTC+02:00)" in mail.text
    assert "GMT-2" not in mail.text + mail.html_text
