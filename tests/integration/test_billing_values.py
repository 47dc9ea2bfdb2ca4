"""Values as billing systems really send them, end to end (SPEC §4), walked as a billing
integrator: a language as a locale ("en-GB", "ro_RO"), a time zone in lower case or as an
offset. account.created refused for one of them lost the welcome and every later notice of
the account (unknown account), so what can be mapped is, and what cannot is left to the
operator's [defaults] with a warning that names the field, never its value."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import structlog

from notifyd.catalogue.samples import sample_event
from tests.conftest import running_daemon
from tests.integration.catalogue_support import (
    RawSink,
    mail_number,
    post_ok,
    raw_smtp_server,
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


@pytest.fixture
async def sink() -> AsyncIterator[RawSink]:
    async with raw_smtp_server() as server:
        yield server


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
