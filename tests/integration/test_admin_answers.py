"""Every answer of the admin API and of the webhook is what its model writes, with a status
the document lists.

A session calls every admin operation (and the webhook) for each of its successes and
for its usual refusals; each answer is read back through the model its Operation names (an
error through Error) and written again: what comes out must be the body, key for key.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pydantic

from notifyd.catalogue.samples import sample_event
from notifyd.http.openapi import document
from notifyd.http.operations import served
from tests.conftest import (
    BILLING_SECRET,
    PBX_SECRET,
    Running,
    app_without_services,
    load_config,
    running_daemon,
    signed_request,
)
from tests.integration.admin_support import OPS_TOKEN, READ_TOKEN, admin_config

Answered = tuple[str, str, int, str]  # method, path template, status, body


class Session:
    def __init__(self, daemon: Running) -> None:
        self.daemon = daemon
        self.answers: list[Answered] = []

    async def call(
        self,
        method: str,
        template: str,
        *,
        query: str = "",
        json_body: object = None,
        data: bytes | None = None,
        content_type: str | None = None,
        token: str | None = OPS_TOKEN,
        **values: str,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if json_body is not None:
            data, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        admin = template.startswith(("/v1/admin/", "/export"))  # the admin listener's
        base = self.daemon.admin_url if admin else self.daemon.base_url
        url = f"{base}{template.format(**values)}{query}"
        async with self.daemon.session.request(method, url, data=data, headers=headers) as got:
            text = await got.text()
        self.answers.append((method, template, got.status, text))
        return got.status, json.loads(text) if text else None

    async def webhook(self, event: dict[str, Any], secret: str, webhook_id: str) -> None:
        source = "pbx" if secret == PBX_SECRET else "billing"
        body, headers = signed_request(event, secret, webhook_id=webhook_id)
        url = f"{self.daemon.base_url}/v1/webhooks/{source}"
        async with self.daemon.session.post(url, data=body, headers=headers) as got:
            text = await got.text()
        self.answers.append(("POST", "/v1/webhooks/{source}", got.status, text))


SUBSCRIBER = "/v1/admin/subscribers/{account_id}"
PREFERENCES = "/v1/admin/subscribers/{account_id}/preferences"
CONSENT = "/v1/admin/subscribers/{account_id}/consent"
RESTRICTION = "/v1/admin/subscribers/{account_id}/restriction"
REVOKE_LINKS = "/v1/admin/subscribers/{account_id}/links/revoke"
NOTICES = "/v1/admin/subscribers/{account_id}/notices"
EVENTS = "/v1/admin/subscribers/{account_id}/events"
EVENT = "/v1/admin/events/{event_id}"
DEAD_LETTERS = "/v1/admin/dead-letters"
RETRY = "/v1/admin/notices/{notice_id}/retry"
UNDELIVERABLE = "/v1/admin/undeliverable"
ADDRESS = "/v1/admin/undeliverable/{address}"
BROADCASTS = "/v1/admin/broadcasts"
BROADCAST = "/v1/admin/broadcasts/{broadcast_id}"
IMPORT = "/v1/admin/subscribers/import"
AUDIT = "/v1/admin/audit"
EXPORT = "/v1/admin/subscribers/{account_id}/export"
NO_SUCH_ID = "00000000-0000-0000-0000-000000000000"


async def subscribers_and_their_settings(s: Session) -> None:
    whole = {"email": "ana@client.example", "username": "ana", "name": "Ana", "language": "ro"}
    await s.call("PUT", SUBSCRIBER, json_body={**whole, "timezone": None}, account_id="acc-9")
    await s.call("PUT", SUBSCRIBER, json_body={**whole, "timezone": None}, account_id="acc-9")
    await s.call("PUT", SUBSCRIBER, json_body={"email": "nope"}, account_id="acc-9")
    await s.call("PUT", SUBSCRIBER, data=b"{", content_type="application/json", account_id="a")
    await s.call("PATCH", SUBSCRIBER, json_body={"name": None}, account_id="acc-9")
    await s.call("PATCH", SUBSCRIBER, json_body={"name": "G"}, account_id="ghost")
    await s.call("GET", SUBSCRIBER, account_id="acc-9")
    await s.call("GET", SUBSCRIBER, account_id="ghost")
    await s.call("GET", SUBSCRIBER, account_id="acc-9", token=None)
    await s.call("GET", PREFERENCES, account_id="acc-9")
    chosen = {
        "modes": {"calls": "hourly", "fax": "daily"},
        "quiet_hours": "23:00-07:00",
        "addresses": {"fax": ["office@client.example", "scanner@client.example"]},
        "extra_emails": ["ana.work@client.example"],
        "voicemail_audio": False,
        "low_credit_threshold": "20.00",
    }
    await s.call("PATCH", PREFERENCES, json_body=chosen, account_id="acc-9")
    await s.call("PATCH", PREFERENCES, json_body={"modes": {"security": "off"}}, account_id="a")
    grant = {"marketing": True, "source": "subscriber", "wording_version": "2026-11"}
    await s.call("POST", CONSENT, json_body=grant, account_id="acc-9")
    await s.call("POST", CONSENT, json_body={**grant, "marketing": False}, account_id="acc-9")
    await s.call("GET", CONSENT, account_id="acc-9")
    await s.call("GET", CONSENT, account_id="ghost")
    await s.call("PUT", RESTRICTION, account_id="acc-9")
    await s.call("GET", SUBSCRIBER, account_id="acc-9")
    await s.call("DELETE", RESTRICTION, account_id="acc-9")
    await s.call("PUT", RESTRICTION, account_id="ghost")
    await s.call("POST", REVOKE_LINKS, account_id="acc-9")
    await s.call("POST", REVOKE_LINKS, account_id="ghost")


async def events_and_notices(s: Session, db: asyncpg.Connection) -> None:
    await s.webhook(sample_event("account.created", "acc-1"), BILLING_SECRET, "msg_created")
    await s.webhook(sample_event("account.created", "acc-1"), BILLING_SECRET, "msg_created")
    await s.webhook(sample_event("call.missed", "acc-1"), PBX_SECRET, "msg_call")
    await s.webhook(sample_event("billing.balance_updated", "acc-1"), BILLING_SECRET, "msg_bal")
    await s.webhook(sample_event("call.missed", "acc-404"), PBX_SECRET, "msg_unknown")
    async with asyncio.timeout(15):
        while await db.fetchval("SELECT count(*) FROM notices WHERE state = 'sent'") < 2:
            await asyncio.sleep(0.05)
    await s.call("GET", NOTICES, account_id="acc-1")
    await s.call("GET", NOTICES, query="?limit=x", account_id="acc-1")
    await s.call("GET", NOTICES, account_id="acc-404")
    await s.call("GET", NOTICES, account_id="ghost")
    _, listed = await s.call("GET", EVENTS, account_id="acc-1")
    await s.call("GET", EVENTS, query="?before=yesterday", account_id="acc-1")
    await s.call("GET", EVENTS, account_id="acc-404")
    for event in listed["events"]:
        await s.call("GET", EVENT, event_id=event["event_id"])
    await s.call("GET", EVENT, event_id="not-an-id")
    failed = await db.fetchval(
        "UPDATE notices SET state = 'failed', last_error = '550 no', failed_at = now()"
        " WHERE kind = 'account.created' RETURNING id"
    )
    await s.call("GET", DEAD_LETTERS)
    await s.call("GET", DEAD_LETTERS, query="?category=service&before=2999-01-01T00:00:00Z")
    await s.call("GET", DEAD_LETTERS, query="?category=pizza")
    await s.call("POST", RETRY, notice_id=str(failed))
    await s.call("POST", RETRY, notice_id=str(failed))
    await s.call("POST", RETRY, notice_id=NO_SUCH_ID)
    await db.execute(
        "INSERT INTO address_health (address, hard_bounces, last_reply, last_bounce_at,"
        " undeliverable_at) VALUES ('gone@client.example', 3, '550 gone', now(), now())"
    )
    await s.call("GET", UNDELIVERABLE)
    await s.call("GET", UNDELIVERABLE, query="?limit=zz")
    await s.call("DELETE", ADDRESS, address="gone@client.example")
    await s.call("DELETE", ADDRESS, address="gone@client.example")


async def broadcasts_and_imports(s: Session) -> None:
    broadcast = {
        "kind": "notice.service",
        "subject": {"ro": "Mentenanță", "en": "Maintenance"},
        "body": {"ro": "Lucrări.", "en": "Works."},
        "starts_at": "2999-11-27T20:00:00Z",
    }
    _, created = await s.call("POST", BROADCASTS, json_body=broadcast)
    await s.call("POST", BROADCASTS, json_body={**broadcast, "subject": {"ro": "a"}})
    await s.call("GET", BROADCAST, broadcast_id=created["id"])
    await s.call("GET", BROADCAST, broadcast_id="nope")
    await s.call("DELETE", BROADCAST, broadcast_id=created["id"])
    await s.call("DELETE", BROADCAST, broadcast_id=created["id"])
    csv = (
        "account_id,email,name,marketing\n"
        "acc-20,a20@client.example,A,true\n"
        "acc-21,nope,B,\n"
        'acc-22,a22@client.example,"C\nD",false\n'
        'acc-23,nope,"E\nF",\n'
    )
    await s.call("POST", IMPORT, data=csv.encode(), content_type="text/csv")
    rows = b'{"account_id": "acc-40", "email": "a40@client.example"}\n'
    await s.call("POST", IMPORT, data=rows, content_type="application/x-ndjson")
    await s.call("POST", IMPORT, data=b"account_id,email,zz\n", content_type="text/csv")
    unclosed = b'account_id,email\nacc-30,a30@client.example\nacc-31,"open\n'
    await s.call("POST", IMPORT, data=unclosed, content_type="text/csv")
    await s.call("POST", IMPORT, data=b"<xml/>", content_type="application/xml")


async def the_audit_trail(s: Session) -> None:
    await s.call("GET", AUDIT)
    await s.call("GET", AUDIT, query="?account_id=acc-9&action=subscriber.saved&limit=1")
    await s.call("GET", AUDIT, query="?before=yesterday")
    # A token without the scope: refused, with the Error body the document names.
    await s.call("PATCH", SUBSCRIBER, json_body={"name": "R"}, account_id="acc-9", token=READ_TOKEN)


async def privacy_rights(s: Session) -> None:
    await s.call("GET", EXPORT, account_id="acc-1")
    await s.call("GET", EXPORT, account_id="ghost")
    await s.call("DELETE", SUBSCRIBER, account_id="acc-1")
    await s.call("DELETE", SUBSCRIBER, account_id="ghost")


async def test_every_answer_is_written_by_the_model_its_operation_names(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    app = app_without_services(tmp_path)
    operations = {(operation.method, path): operation for path, operation in served(app)}
    documented = document(app)["paths"]
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        session = Session(daemon)
        await subscribers_and_their_settings(session)
        await events_and_notices(session, db)
        await broadcasts_and_imports(session)
        await the_audit_trail(session)
        await privacy_rights(session)

    problems = []
    for method, template, status, text in session.answers:
        answer = operations[(method, template)].every_answer(template).get(status)
        if answer is None or str(status) not in documented[template][method.lower()]["responses"]:
            problems.append(f"{method} {template}: {status} is not documented")
            continue
        model = answer.body
        if model is None:
            if text:
                problems.append(f"{method} {template}: {status} has a body: {text}")
            continue
        try:
            written = model.model_validate_json(text).model_dump(mode="json")
        except pydantic.ValidationError as error:
            problems.append(f"{method} {template}: {status} {text}: {error}")
            continue
        if json.loads(text) != written:
            problems.append(f"{method} {template}: {status} {text} is not {written}")
    assert problems == []

    # Every success each admin operation and the webhook document was given and checked.
    succeeded = {(m, t, s) for m, t, s, _ in session.answers if s < 300}
    expected = {
        (method, template, status)
        for (method, template), operation in operations.items()
        if template.startswith(("/v1/admin/", "/v1/webhooks/"))
        for status in operation.answers
        if status < 300
    }
    assert expected - succeeded == set()
