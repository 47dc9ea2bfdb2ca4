"""No exception anywhere in a send leaves a notice claimed (issue 16, item 4): a fault is
injected once at each stage of a send (render, DKIM sign, connect, each SMTP step, the
record of the outcome) and the notice always ends with a recorded outcome, a retry or a
failure with its reason, well before its lease would have handed it back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifyd.catalogue.samples import sample_event
from notifyd.mail.dkim import DkimSigner
from notifyd.mail.pipelined import PipelinedSession
from notifyd.mail.rendering import Renderer
from notifyd.storage import notices as notice_store
from tests.conftest import (
    BILLING_SECRET,
    SmtpSink,
    base_config,
    eventually,
    load_config,
    running_daemon,
    smtp_server,
)
from tests.integration.queue_support import settled_notices
from tests.integration.smtp_support import dkim_key

# Far longer than any wait below: a notice seen out of 'sending' was recorded, not handed
# back by the end of its lease.
LEASE_SECONDS = 60
INJECTED = "injected fault"
GREYLISTED = "451 4.7.1 Greylisted, try again later"
UNKNOWN_USER = "550 5.1.1 User unknown"


class Injected(RuntimeError):
    """The fault a stage raises once: nothing in notifyd expects it."""


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Make `owner.name` raise `Injected` on its first call only; returns the call count."""
    original: Callable[..., Any] = getattr(owner, name)
    calls: list[int] = []

    def first_call_fails(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise Injected(INJECTED)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, first_call_fails)
    return calls


@dataclass(frozen=True)
class Stage:
    owner: Any  # where the fault is raised: owner.name
    name: str
    end: str  # the notice's state at the end
    pipelining: bool = False  # the relay offers PIPELINING
    rcpt_reply: str = ""  # the relay's first answer to RCPT, if not 250


STAGES = {
    # A message that cannot be made fails with the reason: it would fail again.
    "render": Stage(Renderer, "mail", "failed"),
    "dkim sign": Stage(DkimSigner, "sign", "failed"),
    # Faults on the relay's side are retried, and the retry sends the notice.
    "connect": Stage(aiosmtplib.SMTP, "connect", "sent"),
    "ehlo": Stage(aiosmtplib.SMTP, "ehlo", "sent"),
    "mail": Stage(aiosmtplib.SMTP, "mail", "sent"),
    "rcpt": Stage(aiosmtplib.SMTP, "rcpt", "sent"),
    "data": Stage(aiosmtplib.SMTP, "data", "sent"),
    "pipelined write": Stage(PipelinedSession, "_write", "sent", pipelining=True),
    "pipelined reply": Stage(PipelinedSession, "_reply", "sent", pipelining=True),
    # A record that fails: written again ('sent': the email must not go twice), or the
    # notice retried in its place.
    "record sent": Stage(notice_store, "mark_sent_many", "sent", pipelining=True),
    "record retry": Stage(notice_store, "mark_retry", "sent", rcpt_reply=GREYLISTED),
    "record failed": Stage(notice_store, "mark_failed", "sent", rcpt_reply=UNKNOWN_USER),
}


@pytest.mark.parametrize("stage", list(STAGES))
async def test_a_fault_at_any_stage_of_a_send_ends_in_a_recorded_outcome(
    stage: str,
    tmp_path: Path,
    database_url: str,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    injected = STAGES[stage]
    config = base_config(
        tmp_path,
        database_url,
        None,
        delivery={"lease_seconds": LEASE_SECONDS},
        dkim={"domain": "voip.example", "selector": "s1", "private_key_file": ""},
    )
    if stage == "dkim sign":
        config["dkim"]["private_key_file"] = str(dkim_key(tmp_path))
    else:
        del config["dkim"]
    async with smtp_server(SmtpSink(pipelining=injected.pipelining)) as sink:
        if injected.rcpt_reply:
            sink.rcpt_replies.append(injected.rcpt_reply)
        config["smtp"].update(host="127.0.0.1", port=sink.port)
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            calls = fail_once(monkeypatch, injected.owner, injected.name)
            event = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202

            async def ended() -> asyncpg.Record | None:
                row = await db.fetchrow("SELECT * FROM notices")
                return row if row is not None and row["state"] == injected.end else None

            notice = await eventually(ended, f"the notice {injected.end} after {stage} failed")
            assert notice is not None
            # The only notice, and it has its outcome: the daemon's stop below lets a
            # send still in progress finish, so the sink's count after it is final.
            assert len(await settled_notices(db)) == 1
    assert calls, f"the fault at {stage} was never reached"
    assert notice["last_error"] is None or INJECTED in notice["last_error"]
    if injected.end == "failed":
        step = "DKIM signing" if stage == "dkim sign" else "rendering"
        assert notice["last_error"] == f"{step} failed: {INJECTED}"
        assert sink.messages == []
    else:
        assert len(sink.messages) == 1
        # One attempt more than the faults that ended one: the 'sent' record is written
        # again, not the email sent again.
        assert notice["attempts"] == (1 if stage == "record sent" else 2)


@dataclass
class NulReplies(SmtpSink):
    """A relay whose replies to the final dot carry a NUL byte, which PostgreSQL cannot store
    in text: accepted ones, and one refusal for retry first."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.data_commands:
            self.data_commands += 1
            return "451 4.3.0 try\x00 later"
        reply = await super().handle_DATA(server, session, envelope)
        return reply.replace("Ok", "Ok\x00")


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "without"])
async def test_a_relay_reply_with_a_nul_byte_is_recorded_and_sent_once(
    pipelining: bool, tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    async with smtp_server(NulReplies(pipelining=pipelining)) as sink:
        config = base_config(tmp_path, database_url, sink.port)
        config["delivery"]["lease_seconds"] = LEASE_SECONDS
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            event = sample_event("account.created", "acc-1", email="ana@client.example")
            assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202

            async def sent() -> asyncpg.Record | None:
                row = await db.fetchrow("SELECT * FROM notices WHERE state = 'sent'")
                return row

            notice = await eventually(sent, "the notice recorded as sent")
            assert notice is not None
            # The only notice, and it has its outcome: the daemon's stop below lets a
            # send still in progress finish, so the sink's count after it is final.
            assert len(await settled_notices(db)) == 1
    assert len(sink.messages) == 1
    assert notice["attempts"] == 2
    assert "\x00" not in notice["smtp_reply"]
