"""Preferences decide whether, when and to whom notices go; defaults follow the config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    SmtpSink,
    load_config,
    running_daemon,
    write_config,
)
from tests.integration.admin_support import admin_config, call
from tests.integration.queue_support import settled_notices


def quiet_now() -> str:
    """Quiet hours around the current time in Bucharest: 'now' is always inside them."""
    local = datetime.now(UTC).astimezone(ZoneInfo("Europe/Bucharest"))
    start, end = local - timedelta(hours=2), local + timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}"


async def created(daemon: Any, account: str = "acc-1", **data: Any) -> None:
    event = sample_event("account.created", account, **data)
    assert (await daemon.post("billing", event, BILLING_SECRET))[0] == 202


async def test_subscribers_without_choices_follow_the_current_config_defaults(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, None)
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        await created(daemon)
        before = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        config["defaults"]["quiet_hours"] = "21:00-07:00"
        config["defaults.modes"] = {"billing": "off"}
        write_config(settings.path, config)
        assert await daemon.daemon.reload()
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
        payment = sample_event("billing.payment_confirmed", "acc-1")
        await daemon.post("billing", payment, BILLING_SECRET)
    assert before[1]["effective"]["quiet_hours"] == ""
    assert before[1]["explicit"] == {}
    assert after[1]["effective"]["quiet_hours"] == "21:00-07:00"  # not a copy from creation
    assert after[1]["effective"]["modes"]["billing"] == "off"
    kinds = await db.fetch("SELECT kind FROM notices ORDER BY created_at")
    assert [row["kind"] for row in kinds] == ["account.created"]  # the payment was off


async def test_a_category_turned_off_sends_nothing_but_security_cannot_be(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await created(daemon)
        off = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={"modes": {"calls": "off"}},
        )
        refused = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={"modes": {"security": "off"}},
        )
        await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        await daemon.post("pbx", sample_event("account.pin_created", "acc-1"), PBX_SECRET)
        messages = await smtp_sink.wait_for(2)
        # Both webhooks' notices were committed before their 202: once they are settled,
        # a missed call's email would have been sent.
        kinds = [(row["kind"], row["state"]) for row in await settled_notices(db)]
    assert kinds == [("account.created", "sent"), ("account.pin_created", "sent")]
    assert off[0] == 200
    assert off[1]["explicit"] == {"modes": {"calls": "off"}}
    assert refused[0] == 422
    assert "mandatory" in refused[1]["fields"]["modes.security"]
    assert len(smtp_sink.messages) == 2  # welcome and the PIN notice, no missed call
    assert "PIN" in str(messages[1]["Subject"])


async def test_faxes_can_go_to_another_address(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await created(daemon, email="ana@client.example")
        patched = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={"addresses": {"fax": "office@client.example"}},
        )
        await daemon.post("pbx", sample_event("fax.sent", "acc-1"), PBX_SECRET)
        await daemon.post("pbx", sample_event("call.missed", "acc-1"), PBX_SECRET)
        await smtp_sink.wait_for(3)
    assert patched[1]["effective"]["addresses"]["fax"] == ["office@client.example"]
    # The fax's and the call's emails are sent side by side: in either order.
    recipients = sorted(rcpts for _, rcpts in smtp_sink.envelopes)
    assert recipients == [["ana@client.example"], ["ana@client.example"], ["office@client.example"]]
    (to_office,) = [m for m in smtp_sink.messages if m["To"] == "office@client.example"]
    assert "fax" in str(to_office["Subject"]).lower()


async def test_a_subscribers_own_quiet_hours_win_over_the_default(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["defaults"]["quiet_hours"] = quiet_now()
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        await created(daemon, "acc-quiet")
        await created(daemon, "acc-awake")
        await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-awake/preferences",
            json={"quiet_hours": ""},
        )
        for account in ("acc-quiet", "acc-awake"):
            await daemon.post("pbx", sample_event("call.missed", account), PBX_SECRET)
        await smtp_sink.wait_for(3)
        # Nothing left to send but the quiet account's call, queued for the end of its
        # quiet hours (two hours away; checked below).
        await settled_notices(db, later=timedelta(minutes=30))
    rows = await db.fetch(
        "SELECT account_id, state, due_at > now() + interval '30 minutes' AS held"
        " FROM notices WHERE kind = 'call.missed'"
    )
    states = {row["account_id"]: row["state"] for row in rows}
    assert states == {"acc-quiet": "queued", "acc-awake": "sent"}
    assert [row["held"] for row in rows if row["account_id"] == "acc-quiet"] == [True]


async def test_voicemail_audio_can_be_turned_off(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await created(daemon)
        await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={"voicemail_audio": False},
        )
        await daemon.post("pbx", sample_event("voicemail.received", "acc-1"), PBX_SECRET)
        messages = await smtp_sink.wait_for(2)
    assert list(messages[1].iter_attachments()) == []


async def test_invalid_preferences_are_named_field_by_field(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await created(daemon)
        invalid = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={
                "modes": {"calls": "sometimes"},
                "quiet_hours": "late",
                "addresses": {"fax": "nope", "calls": ["ok@client.example", "nope"]},
                "extra_emails": ["fine@client.example", "bad"],
                "digest_time": "25:00",
                "language": "fr",
                "low_credit_threshold": "12,50",
            },
        )
        missing = await call(
            daemon, "PATCH", "/v1/admin/subscribers/ghost/preferences", json={"language": "en"}
        )
    assert invalid[0] == 422
    assert set(invalid[1]["fields"]) == {
        "modes.calls",
        "quiet_hours",
        # One address or a list: the position of the bad one is named.
        "addresses.fax.0",
        "addresses.calls.1",
        "extra_emails.1",
        "digest_time",
        "language",
        "low_credit_threshold",
    }
    assert missing[0] == 404


async def test_the_statement_is_chosen_by_its_issue_name_billing_statement_too(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """Issue 20 names the monthly statement's category `billing.statement`; it is stored as
    `statement` (a bare dotted TOML key would be a table). Both names are taken, in the
    admin API and in [defaults.modes]."""
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    # Quoted, as an operator writes a dotted key in TOML.
    config["defaults.modes"] = {'"billing.statement"': "immediate"}
    settings = load_config(tmp_path, config)
    assert settings.defaults.modes == {"statement": "immediate"}
    async with running_daemon(settings) as daemon:
        await created(daemon)
        chosen = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={
                "modes": {"billing.statement": "off"},
                "addresses": {"billing.statement": ["conta@client.example"]},
            },
        )
    assert chosen[0] == 200, chosen
    assert chosen[1]["explicit"]["modes"] == {"statement": "off"}
    assert chosen[1]["explicit"]["addresses"] == {"statement": ["conta@client.example"]}
    assert chosen[1]["effective"]["modes"]["statement"] == "off"


async def test_a_wrong_threshold_is_told_what_is_wrong_with_it(
    tmp_path: Path, database_url: str
) -> None:
    """A support agent writing a Romanian decimal ("20,50") was told "(not a JSON number)"
    of the string they sent: each wrong amount is now told what is wrong with it (a JSON
    number is taken where it reads exactly, catalogue/fields.py)."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    path = "/v1/admin/subscribers/acc-1/preferences"
    async with running_daemon(settings) as daemon:
        await created(daemon)
        answers = [
            await call(daemon, "PATCH", path, json={"low_credit_threshold": value})
            for value in ("20,50", 0.1 + 0.2, "20 RON")
        ]
    told = [fields["fields"]["low_credit_threshold"] for _, fields in answers]
    assert [status for status, _ in answers] == [422, 422, 422]
    assert (
        told[0]
        == told[2]
        == ('must be a decimal such as "12.50": a point, no unit, no thousands separators')
    )
    assert told[1] == (
        "the JSON number 0.30000000000000004 cannot be read exactly as an amount: "
        'send a decimal string such as "12.50"'
    )
