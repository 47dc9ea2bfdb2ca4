"""The account's email address changes (account.updated): the old mailbox keeps no control
of the account, and gets nothing more of it but the notice of the change. People change the
address because they lost the old mailbox, or because someone else reads it (a former
employee, a shared office box); its preference links would let that reader send the
voicemail and faxes to an address of theirs, or consent to offers in the subscriber's
name."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, SmtpSink, running_daemon
from tests.integration import consent_now_support as waits
from tests.integration.daemon_support import post, preferences_link, settings_for, welcome

OLD = "acc-1@client.example"
NEW = "ana.noua@client.example"


async def test_the_old_address_preference_links_stop_opening_after_an_address_change(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    async with running_daemon(settings_for(tmp_path, database_url, smtp_sink.port)) as daemon:
        before = await welcome(daemon, smtp_sink)  # sent to OLD
        changed = sample_event("account.updated", "acc-1", email=NEW)
        assert (await daemon.post("billing", changed, BILLING_SECRET))[0] == 202
        notices = (await smtp_sink.wait_for(3))[1:]
        to_old = next(mail for mail in notices if mail["To"] == OLD)
        to_new = next(mail for mail in notices if mail["To"] == NEW)
        answers = {}
        for name, link in (
            ("welcome", before),
            ("change, to the old address", preferences_link(to_old)),
            ("change, to the new address", preferences_link(to_new)),
        ):
            async with daemon.session.get(link) as answer:
                answers[name] = answer.status
    # The old address's links offer a fresh one, which goes to the account's (new) address.
    assert answers == {
        "welcome": 410,
        "change, to the old address": 410,
        "change, to the new address": 200,
    }


async def test_what_waits_for_the_old_address_goes_to_the_new_one(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """A voicemail held by quiet hours, then the address changes: the morning's email (with
    the recording) must not go to the mailbox the subscriber just left."""
    async with running_daemon(waits.settings_for(tmp_path, database_url, smtp_sink)) as daemon:
        await welcome(daemon, smtp_sink)
        await waits.preferences(daemon, "acc-1", quiet_hours=waits.quiet_now())
        await post(daemon, "voicemail.received", "acc-1", call_id="call-quiet")
        changed = sample_event("account.updated", "acc-1", email=NEW)
        assert (await daemon.post("billing", changed, BILLING_SECRET))[0] == 202
        await smtp_sink.wait_for(3)  # the change's notices, which do not wait
        await waits.move_clock_past_waits(daemon, db)
        await waits.settled(smtp_sink, 4, db)
        sent = [(str(m["Subject"]), str(m["To"])) for m in smtp_sink.messages]
    voicemails = [to for subject, to in sent if "mesaj vocal" in subject.lower()]
    assert voicemails == [NEW], sent
