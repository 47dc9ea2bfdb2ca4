"""Why did (nothing) happen: every reason sentence notifyd can store, each driven through the
real intake (`intake.ingest` on a real PostgreSQL) and read back as the admin API reads it,
word for word. A sentence that no longer matches what happened fails here.

Reasons exist in English only (the admin's language); there is no other wording to test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from notifyd.catalogue.events import parse_event
from notifyd.catalogue.samples import sample_event
from notifyd.intake.broadcasts import fan_out_batch
from notifyd.intake.facts import IntakeRules
from notifyd.intake.ingest import Receipt, ingest
from notifyd.model import QuietHours
from notifyd.settings import CallSettings, DefaultsSettings, Thresholds
from notifyd.storage import broadcasts as broadcast_store
from notifyd.storage import events as event_store
from notifyd.storage import notices as notice_store
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    SmtpSink,
    eventually,
    load_config,
    running_daemon,
)
from tests.integration.admin_support import admin_config, call

ACCOUNT = "acc-why"
ZONE = "Europe/Bucharest"
NOON = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)  # 12:00 in Bucharest
NIGHT = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # 01:00 in Bucharest
QUIET = QuietHours(time(22, 0), time(8, 0))
RULES = IntakeRules(
    DefaultsSettings(language="ro", timezone=ZONE, quiet_hours=QUIET),
    CallSettings(voicemail_wait_seconds=120, burst_window_seconds=0),
    {"EUR": Thresholds(low=Decimal("10"), critical=Decimal("2"), hysteresis=Decimal("1"))},
    "voip.example",
)
_ids = iter(range(1_000_000))


async def post(
    pool: asyncpg.Pool,
    kind: str,
    *,
    now: datetime = NOON,
    rules: IntakeRules = RULES,
    account: str = ACCOUNT,
    **fields: Any,
) -> Receipt:
    raw = sample_event(kind, account, now=now, **fields)
    return await ingest(
        pool,
        source="pbx",
        webhook_id=f"msg_{next(_ids)}",
        event=parse_event(json.dumps(raw).encode()),
        rules=rules,
        now=now,
    )


async def reasons(db: asyncpg.Connection, receipt: Receipt) -> list[list[str]]:
    rows = await db.fetch(
        "SELECT reasons FROM notices WHERE event_id = $1 ORDER BY recipient", receipt.event_id
    )
    return [row["reasons"] for row in rows]


async def subscriber(pool: asyncpg.Pool, db: asyncpg.Connection, **preferences: Any) -> None:
    await post(pool, "account.created", email="ana@client.example")
    if preferences:
        await db.execute(
            "UPDATE subscribers SET preferences = $1 WHERE account_id = $2",
            preferences,
            ACCOUNT,
        )


def quiet(start: int, end: int, **changes: Any) -> IntakeRules:
    window = QuietHours(time(start), time(end))
    defaults = RULES.defaults.model_copy(update={"quiet_hours": window, **changes})
    return replace(RULES, defaults=defaults)


# -- found by trying it -----------------------------------------------------------------------


async def test_a_daily_digest_outside_quiet_hours_does_not_claim_to_follow_them(
    daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    rules = quiet(23, 7, digest_time=time(21, 0))
    await subscriber(daemon_pool, db, modes={"fax": "daily"})
    fax = await post(daemon_pool, "fax.sent", rules=rules)
    assert await reasons(db, fax) == [
        [
            "category fax",
            "fax notices go in the daily digest: held for the one sent at"
            " 2026-11-22 21:00 Europe/Bucharest",
        ]
    ]


async def test_a_missed_call_alone_does_not_speak_of_other_legs(
    daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await subscriber(daemon_pool, db)
    call = await post(daemon_pool, "call.missed", call_id="1763800000.1", to_voicemail=False)
    assert await reasons(db, call) == [["category calls", "outside quiet hours: sent at once"]]


async def test_a_sent_notice_was_due_before_it_was_sent(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    # One notice claimed as it is queued (the welcome, due now), one claimed by a worker
    # when its wait for a voicemail ends: each claim used to write its lease into due_at.
    settings = load_config(
        tmp_path,
        admin_config(tmp_path, database_url, smtp_sink.port)
        | {"calls": {"voicemail_wait_seconds": 0.3, "burst_window_seconds": 0}},
    )
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", ACCOUNT), BILLING_SECRET)
        await daemon.post(
            "pbx", sample_event("call.missed", ACCOUNT, to_voicemail=True), PBX_SECRET
        )
        await smtp_sink.wait_for(2)

        async def both_recorded() -> list[dict[str, Any]]:
            listed = await call(daemon, "GET", f"/v1/admin/subscribers/{ACCOUNT}/notices")
            notices: list[dict[str, Any]] = listed[1]["notices"]
            return notices if all(n["sent_at"] for n in notices) else []

        notices = await eventually(both_recorded, "both notices recorded as sent")
    assert sorted(n["kind"] for n in notices) == ["account.created", "call.missed"]
    for notice in notices:
        due, sent = (datetime.fromisoformat(notice[key]) for key in ("due_at", "sent_at"))
        assert due <= sent, notice


# -- the admin API: events, their decisions and their notices --------------------------------


async def test_the_admin_sees_why_an_unknown_accounts_event_queued_nothing(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        posted = await daemon.post("pbx", sample_event("call.missed", "acc-nobody"), PBX_SECRET)
        event_id = posted[1]["event_id"]
        listed = await call(daemon, "GET", "/v1/admin/subscribers/acc-nobody/events")
        looked_up = await call(daemon, "GET", f"/v1/admin/events/{event_id}")
        notices_view = await call(daemon, "GET", "/v1/admin/subscribers/acc-nobody/notices")
        nobody = await call(daemon, "GET", "/v1/admin/subscribers/acc-never/events")
    unknown = {
        "outcome": "nothing_queued",
        "code": "unknown_account",
        "reason": "unknown account: no account.created received for it",
    }
    assert listed[0] == 200
    assert listed[1]["subscriber"] is False
    [event] = listed[1]["events"]
    assert (event["event_id"], event["type"], event["notices"]) == (event_id, "call.missed", 0)
    assert event["decision"] == unknown
    assert looked_up[0] == 200
    assert looked_up[1]["decision"] == unknown
    assert looked_up[1]["notices"] == []
    assert notices_view[0] == 200
    assert notices_view[1]["notices"] == []
    assert [e["decision"] for e in notices_view[1]["events_without_notices"]] == [unknown]
    assert nobody[0] == 404


async def test_an_event_looked_up_shows_its_notices_and_their_reasons(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    config["defaults"] = {"quiet_hours": ""}
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", ACCOUNT), BILLING_SECRET)
        posted = await daemon.post(
            "pbx", sample_event("fax.sent", ACCOUNT, remote_number="+40215550109"), PBX_SECRET
        )
        looked_up = await call(daemon, "GET", f"/v1/admin/events/{posted[1]['event_id']}")
        missing = await call(daemon, "GET", f"/v1/admin/events/{uuid4()}")
        malformed = await call(daemon, "GET", "/v1/admin/events/not-a-uuid")
        listed = await call(daemon, "GET", f"/v1/admin/subscribers/{ACCOUNT}/events?limit=1")
        bad = await call(daemon, "GET", f"/v1/admin/subscribers/{ACCOUNT}/events?before=soon")
    assert looked_up[0] == 200
    assert looked_up[1]["decision"] == {"outcome": "queued", "code": "queued", "reason": None}
    [notice] = looked_up[1]["notices"]
    assert notice["kind"] == "fax.sent"
    assert notice["reasons"] == ["category fax", "no quiet hours: sent at once"]
    assert (missing[0], malformed[0]) == (404, 404)
    assert [e["type"] for e in listed[1]["events"]] == ["fax.sent"]
    assert listed[1]["subscriber"] is True
    assert bad[0] == 422
    assert set(bad[1]["fields"]) == {"before"}


async def test_an_event_routed_before_decisions_were_stored_says_so(
    daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    # An older host stores the event and routes it without a decision (during an upgrade).
    receipt = await post(daemon_pool, "call.missed", account="acc-old")
    await db.execute("UPDATE events SET decision = NULL WHERE id = $1", receipt.event_id)
    async with daemon_pool.acquire() as conn:
        found = await event_store.decision(conn, receipt.event_id)
    assert found is not None
    assert found["decision"] == {
        "outcome": "not_recorded",
        "code": "not_recorded",
        "reason": "no decision recorded: routed before decisions were stored (0009)",
    }


# -- one case per reason wording --------------------------------------------------------------
# Each case creates the subscriber (unless `subscribed` is False), applies its preferences and
# bounced addresses, posts its events through the intake and reads what the admin reads of
# the last one: the stored decision, or every reason of each notice (by recipient).

OFFICE, DESK, NEW = "office@client.example", "desk@client.example", "new@client.example"
ANA = "ana@client.example"


@dataclass(frozen=True)
class Post:
    kind: str
    now: datetime = NOON
    fields: dict[str, Any] = field(default_factory=dict)


def p(kind: str, now: datetime = NOON, **fields: Any) -> Post:
    return Post(kind, now, fields)


@dataclass(frozen=True)
class Case:
    posts: tuple[Post, ...]
    # The decision's (code, reason), or the reasons of each notice of the last event.
    expected: tuple[str, str] | list[list[str]]
    preferences: dict[str, Any] = field(default_factory=dict)
    rules: IntakeRules = RULES
    undeliverable: tuple[str, ...] = ()
    subscribed: bool = True


MINUTE = timedelta(minutes=1)
NO_QUIET = replace(RULES, defaults=RULES.defaults.model_copy(update={"quiet_hours": None}))
AT_ONCE = "outside quiet hours: sent at once"
SECURITY = ["category security (mandatory)", "sent at once: never waits for quiet hours"]
CALL = "1763800000.5"
VOICEMAIL_WAIT = (
    "went to voicemail: waits 120 s for a voicemail of the same call, whose email would tell"
    " this missed call too"
)
BURSTS = replace(RULES, calls=CallSettings(voicemail_wait_seconds=120, burst_window_seconds=300))

SKIPS: dict[str, Case] = {
    "unknown account": Case(
        (p("fax.sent"),),
        ("unknown_account", "unknown account: no account.created received for it"),
        subscribed=False,
    ),
    "update without a new address": Case(
        (p("account.updated", name="Ana Maria"),),
        ("updates_subscriber_only", "event updates the subscriber only"),
    ),
    "balance above the thresholds": Case(
        (p("billing.balance_updated", balance="50.00", currency="EUR"),),
        ("no_threshold_crossed", "no low-credit threshold crossed"),
    ),
    "balance still below a threshold told": Case(
        (
            p("billing.balance_updated", balance="5.00", currency="EUR"),
            p(
                "billing.balance_updated",
                NOON + timedelta(minutes=1),
                balance="4.00",
                currency="EUR",
            ),
        ),
        ("no_threshold_crossed", "no low-credit threshold crossed"),
    ),
    "currency without thresholds": Case(
        (p("billing.balance_updated", balance="1.00", currency="RON"),),
        ("no_thresholds", "no low-credit thresholds are configured for RON"),
    ),
    "older balance arriving late": Case(
        (
            p("billing.balance_updated", balance="50.00", currency="EUR"),
            p("billing.balance_updated", NOON - timedelta(hours=1), balance="1.00", currency="EUR"),
        ),
        (
            "older_balance",
            "a newer balance was received before this one: it says nothing about now",
        ),
    ),
    "closed account": Case(
        (p("account.closed"), p("fax.sent")),
        ("account_closed", "account closed: only mandatory notices are sent"),
    ),
    "category off by the subscriber": Case(
        (p("fax.sent"),),
        ("category_off", "the subscriber turned fax notices off"),
        preferences={"modes": {"fax": "off"}},
    ),
    "category off by default": Case(
        (p("fax.sent"),),
        (
            "category_off_by_default",
            "fax notices are off by default ([defaults.modes]) and the subscriber did not"
            " choose otherwise",
        ),
        rules=replace(RULES, defaults=RULES.defaults.model_copy(update={"modes": {"fax": "off"}})),
    ),
    "missed call after its voicemail": Case(
        (p("voicemail.received", call_id=CALL), p("call.missed", call_id=CALL)),
        (
            "voicemail_notified",
            "one email per call: the voicemail of this call already has its own",
        ),
    ),
    "later leg of a call": Case(
        (p("call.missed", call_id=CALL, extension="101"), p("call.missed", call_id=CALL)),
        ("later_leg", "one notice per call: an earlier leg of this call already has it"),
    ),
    "voicemail of a call again": Case(
        (p("voicemail.received", call_id=CALL), p("voicemail.received", call_id=CALL)),
        ("voicemail_again", "one voicemail email per call: this call's voicemail already has it"),
    ),
    "undeliverable address": Case(
        (p("fax.sent"),),
        (
            "undeliverable",
            "the address is undeliverable (hard bounces): nothing is sent to it",
        ),
        undeliverable=(ANA,),
    ),
    "undeliverable addresses": Case(
        (p("fax.sent"),),
        (
            "undeliverable",
            "all 2 addresses are undeliverable (hard bounces): nothing is sent to them",
        ),
        preferences={"addresses": {"fax": [OFFICE, DESK]}},
        undeliverable=(OFFICE, DESK),
    ),
}

NOTICES: dict[str, Case] = {
    "outside quiet hours": Case((p("fax.sent"),), [["category fax", AT_ONCE]]),
    "inside quiet hours": Case(
        (p("fax.sent", NIGHT),),
        [["category fax", "quiet hours 22:00-08:00 in Europe/Bucharest: held until they end"]],
    ),
    "no quiet hours": Case(
        (p("fax.sent"),), [["category fax", "no quiet hours: sent at once"]], rules=NO_QUIET
    ),
    "waits for the voicemail": Case(
        (p("call.missed", to_voicemail=True),),
        [
            [
                "category calls",
                VOICEMAIL_WAIT,
                "the wait ends outside quiet hours 22:00-08:00 in Europe/Bucharest",
            ]
        ],
    ),
    "waits for the voicemail without quiet hours": Case(
        (p("call.missed", to_voicemail=True),),
        [["category calls", VOICEMAIL_WAIT, "no quiet hours: sent when the wait ends"]],
        rules=NO_QUIET,
    ),
    "voicemail tells its missed call": Case(
        (
            p("call.missed", call_id=CALL, to_voicemail=True),
            p("voicemail.received", call_id=CALL),
        ),
        [["category voicemail", "the missed call of the same call is told in this email", AT_ONCE]],
    ),
    "security": Case((p("account.password_changed", NIGHT),), [SECURITY]),
    "welcome": Case(
        (p("account.created", NIGHT, email=ANA),),
        [["category service (mandatory)", "sent at once: never waits for quiet hours"]],
        subscribed=False,
    ),
    "low credit": Case(
        (p("billing.balance_updated", balance="5.00", currency="EUR"),),
        [["category low_credit", "balance crossed below 10 EUR", AT_ONCE]],
    ),
    **{
        f"critical credit not in the {mode} digest": Case(
            (p("billing.balance_updated", balance="1.00", currency="EUR"),),
            [
                [
                    "category low_credit",
                    "balance crossed below 2 EUR",
                    "sent at once: never waits for quiet hours",
                    f"not put in the {mode} digest: this notice cannot wait",
                ]
            ],
            preferences={"modes": {"low_credit": mode}},
        )
        for mode in ("hourly", "daily")
    },
    "changed address": Case(
        (p("account.updated", email=NEW),),
        [
            [
                *SECURITY,
                "sent to the previous address too, in case the change was not the owner's",
            ],
            SECURITY,
        ],
    ),
    "category address": Case(
        (p("fax.sent"),),
        [["category fax", AT_ONCE, "fax notices go to this address"]],
        preferences={"addresses": {"fax": [OFFICE]}},
    ),
    "extra address": Case(
        (p("fax.sent"),),
        [
            ["category fax", AT_ONCE],
            ["category fax", AT_ONCE, "also sent to this address of the account"],
        ],
        preferences={"extra_emails": [DESK]},
    ),
    "mandatory to the other addresses": Case(
        (p("account.password_changed"),),
        [
            [
                *SECURITY,
                "the address is undeliverable (hard bounces): a mandatory notice goes to the"
                " account's other addresses",
            ]
        ],
        preferences={"addresses": {"security": [OFFICE]}},
        undeliverable=(OFFICE,),
    ),
    "mandatory with every address undeliverable": Case(
        (p("account.password_changed"),),
        [
            [
                *SECURITY,
                "every address of the account is undeliverable (hard bounces): a mandatory"
                " notice is sent anyway, to fail and show in the dead letters",
            ]
        ],
        undeliverable=(ANA,),
    ),
    "hourly cap": Case(
        (p("fax.sent"), p("fax.sent")),
        [
            [
                "category fax",
                "hourly cap of 1 fax emails reached: waits for the hourly digest at 13:00"
                " Europe/Bucharest",
            ]
        ],
        rules=replace(RULES, hourly_cap=1),
    ),
    "burst of missed calls": Case(
        (p("call.missed", call_id="1.1"), p("call.missed", call_id="1.2")),
        [
            [
                "category calls",
                "a burst of missed calls: gathered into one follow-up email at 12:05"
                " Europe/Bucharest",
            ]
        ],
        rules=BURSTS,
    ),
    "daily digest": Case(
        (p("fax.sent"),),
        [
            [
                "category fax",
                "fax notices go in the daily digest: held for the one sent at 2026-11-23 08:00"
                " Europe/Bucharest",
            ]
        ],
        preferences={"modes": {"fax": "daily"}},
    ),
    "daily digest after quiet hours": Case(
        (p("fax.sent"),),
        [
            [
                "category fax",
                "fax notices go in the daily digest: held for the one sent at 2026-11-23 07:00"
                " Europe/Bucharest, when quiet hours 23:00-07:00 end",
            ]
        ],
        preferences={"modes": {"fax": "daily"}},
        rules=quiet(23, 7, digest_time=time(23, 30)),
    ),
    "hourly digest": Case(
        (p("fax.sent"),),
        [
            [
                "category fax",
                "fax notices go in the hourly digest: held for the one sent at 2026-11-22 13:00"
                " Europe/Bucharest",
            ]
        ],
        preferences={"modes": {"fax": "hourly"}},
    ),
    "hourly digest after quiet hours": Case(
        (p("fax.sent", NIGHT),),
        [
            [
                "category fax",
                "fax notices go in the hourly digest: held for the one sent at 2026-11-23 08:00"
                " Europe/Bucharest, when quiet hours 22:00-08:00 end",
            ]
        ],
        preferences={"modes": {"fax": "hourly"}},
    ),
}


async def play(case: Case, pool: asyncpg.Pool, db: asyncpg.Connection) -> Receipt:
    if case.subscribed:
        await subscriber(pool, db, **case.preferences)
    if case.undeliverable:
        await db.execute(
            "INSERT INTO address_health (address, hard_bounces, undeliverable_at)"
            " SELECT unnest($1::text[]), 3, now()",
            list(case.undeliverable),
        )
    receipt = None
    for posted in case.posts:
        receipt = await post(pool, posted.kind, now=posted.now, rules=case.rules, **posted.fields)
    assert receipt is not None
    return receipt


@pytest.mark.parametrize("case", SKIPS.values(), ids=SKIPS.keys())
async def test_the_decision_of_an_event_that_queued_nothing_says_why(
    case: Case, daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    receipt = await play(case, daemon_pool, db)
    async with daemon_pool.acquire() as conn:
        found = await event_store.decision(conn, receipt.event_id)
    assert found is not None
    assert (found["notices"], found["decision"]["outcome"]) == (0, "nothing_queued")
    assert (found["decision"]["code"], found["decision"]["reason"]) == case.expected
    # The webhook's log line says the same.
    assert receipt.routing is not None
    assert receipt.routing.skipped is not None
    assert receipt.routing.skipped.reason == found["decision"]["reason"]


@pytest.mark.parametrize("case", NOTICES.values(), ids=NOTICES.keys())
async def test_each_notice_says_why_and_when_in_these_words(
    case: Case, daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    receipt = await play(case, daemon_pool, db)
    async with daemon_pool.acquire() as conn:
        notices = await notice_store.of_event(conn, receipt.event_id)
        found = await event_store.decision(conn, receipt.event_id)
    assert [n["reasons"] for n in sorted(notices, key=lambda n: n["recipient"])] == case.expected
    assert found is not None
    assert found["decision"] == {"outcome": "queued", "code": "queued", "reason": None}


# -- reasons written by other paths: digests, follow-ups of bursts, broadcasts ----------------


@pytest.mark.parametrize(
    ("mode", "count", "expected"),
    [
        ("hourly", 1, "hourly digest of 1 fax notice, period ending 2026-11-22 11:00 UTC"),
        ("daily", 2, "daily digest of 2 fax notices, period ending 2026-11-23 06:00 UTC"),
    ],
)
async def test_a_digest_says_what_it_gathers(
    mode: str, count: int, expected: str, daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await subscriber(daemon_pool, db, modes={"fax": mode})
    for _ in range(count):
        await post(daemon_pool, "fax.sent")
    async with daemon_pool.acquire() as conn:
        made = await notice_store.flush_digests(conn, NOON + timedelta(days=2), 10, "voip.example")
    assert made == (1, count)
    reasons = await db.fetchval("SELECT reasons FROM notices WHERE kind = 'digest'")
    assert reasons == [expected]


async def test_the_follow_up_of_a_burst_says_what_it_gathers(
    daemon_pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await subscriber(daemon_pool, db)
    for n in range(3):
        await post(daemon_pool, "call.missed", rules=BURSTS, call_id=f"1.{n}")
    async with daemon_pool.acquire() as conn:
        made = await notice_store.flush_digests(conn, NOON + timedelta(days=1), 10, "voip.example")
    assert made == (1, 2)
    reasons = await db.fetchval("SELECT reasons FROM notices WHERE kind = 'digest'")
    assert reasons == [
        "follow-up email of a burst: 2 calls notices gathered until 2026-11-22 10:05 UTC"
    ]


@pytest.mark.parametrize(
    ("kind", "zone", "expected"),
    [
        (
            "notice.service",
            ZONE,
            ["category service (mandatory)", "broadcast to every open account", AT_ONCE],
        ),
        (
            "notice.policy_changed",
            "America/New_York",  # 05:00 there
            [
                "category service (mandatory)",
                "broadcast to every open account",
                "quiet hours 22:00-08:00 in America/New_York: held until they end",
            ],
        ),
        (
            "marketing.offer",
            ZONE,
            [
                "category marketing",
                "offer to subscribers with consent, not unsubscribed",
                AT_ONCE,
            ],
        ),
    ],
)
async def test_a_broadcasts_notices_say_why(
    kind: str, zone: str, expected: list[str], db: asyncpg.Connection
) -> None:
    await db.execute(
        "INSERT INTO subscribers (account_id, email, timezone) VALUES ($1, $2, $3)",
        ACCOUNT,
        ANA,
        zone,
    )
    await db.execute(
        "INSERT INTO consent_events (account_id, purpose, granted, source, wording_version)"
        " VALUES ($1, 'marketing', true, 'subscriber', 'v1')",
        ACCOUNT,
    )
    async with db.transaction():
        await broadcast_store.create(db, kind, {"subject": "s"}, NOON, None)
    async with db.transaction():
        runnable = await broadcast_store.next_runnable(db)
        assert runnable is not None
        await fan_out_batch(
            db, runnable, size=10, defaults=RULES.defaults, message_domain="voip.example", now=NOON
        )
    assert await db.fetchval("SELECT reasons FROM notices") == expected


async def test_a_notice_sent_after_a_retry_was_due_at_its_retry(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    smtp_sink.rcpt_replies.append("451 4.3.0 try again later")
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", ACCOUNT), BILLING_SECRET)
        await smtp_sink.wait_for(1)

        async def recorded() -> list[dict[str, Any]]:
            listed = await call(daemon, "GET", f"/v1/admin/subscribers/{ACCOUNT}/notices")
            notices: list[dict[str, Any]] = listed[1]["notices"]
            return notices if notices and notices[0]["sent_at"] else []

        [notice] = await eventually(recorded, "the welcome recorded as sent")
    due, sent, created = (
        datetime.fromisoformat(notice[key]) for key in ("due_at", "sent_at", "created_at")
    )
    assert notice["attempts"] == 2
    assert created < due <= sent  # due again when the retry was planned, not at first
