"""The account's email address changes (account.updated): the old mailbox keeps no control
of the account. People change the address because they lost the old mailbox, or because
someone else reads it (a former employee, a shared office box); its preference links would
let that reader send the voicemail and faxes to an address of theirs, or consent to offers
in the subscriber's name."""

from __future__ import annotations

from pathlib import Path

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, SmtpSink, running_daemon
from tests.integration.daemon_support import preferences_link, settings_for, welcome

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
