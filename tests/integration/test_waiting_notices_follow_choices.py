"""A subscriber changes their language and time zone on the preference page while notices
wait for them (quiet hours, an hourly digest): the emails that then go out are written in the
language and the time zone just chosen, as the confirmation page promised, not in the ones
of the moment each event came."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from tests.conftest import SmtpSink, running_daemon
from tests.integration.consent_now_support import (
    move_clock_past_waits,
    preferences,
    quiet_now,
    settings_for,
    settled,
)
from tests.integration.daemon_support import post, submit, welcome


async def test_waiting_notices_are_written_in_the_language_and_zone_just_chosen(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    async with running_daemon(settings_for(tmp_path, database_url, smtp_sink)) as daemon:
        link = await welcome(daemon, smtp_sink)  # Romanian, Europe/Bucharest (the defaults)
        await preferences(daemon, "acc-1", quiet_hours=quiet_now())
        await post(daemon, "call.missed", "acc-1", call_id="call-quiet")
        await preferences(daemon, "acc-1", quiet_hours="", modes={"fax": "hourly"})
        await post(daemon, "fax.received", "acc-1")
        status, page = await submit(daemon, link, {"language": "en", "timezone": "Europe/London"})
        assert status == 200, page
        await move_clock_past_waits(daemon, db)
        subjects = await settled(smtp_sink, 3, db)
        sent = smtp_sink.messages[1:]
    assert len(sent) == 2, subjects
    for mail in sent:
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert mail["Content-Language"] == "en", (mail["Subject"], text)
        assert "(Europe/London)" in text, text
        assert "Europe/Bucharest" not in text, text
    assert sorted(subjects[1:])[0].startswith("Hourly digest"), subjects
    assert "Missed call" in sorted(subjects[1:])[1], subjects
