"""The admin API: bearer tokens from the config (stored as digests), subscribers, notices,
and an OpenAPI document that matches the routes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
from aiohttp import web

from notifyd.catalogue.samples import sample_event
from notifyd.http.openapi import document
from tests.conftest import (
    BILLING_SECRET,
    SmtpSink,
    app_without_services,
    load_config,
    running_daemon,
    write_config,
)
from tests.integration.admin_support import (
    AUDIT_TOKEN,
    OPS_TOKEN,
    admin_config,
    admin_routes,
    call,
    digest,
)


def test_the_token_test_covers_the_routes_of_this_issue() -> None:
    covered = {path for _, path in admin_routes()}
    for path in ("/v1/admin/dead-letters", "/v1/admin/undeliverable/a@b.example"):
        assert path in covered


async def test_every_admin_route_refuses_a_missing_or_wrong_token(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    answers = []
    async with running_daemon(settings) as daemon:
        for method, path in admin_routes():
            for token in (None, "guess", digest(OPS_TOKEN)):
                status, body = await call(daemon, method, path, token=token, json={"x": 1})
                answers.append((method, path, token, status, body.get("error")))
    refused = [a for a in answers if a[3:] != (401, "unauthorized")]
    assert refused == []
    assert len(answers) >= 3 * 12


async def test_a_revoked_token_stops_working_at_reload(tmp_path: Path, database_url: str) -> None:
    config = admin_config(tmp_path, database_url, None)
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        before = await call(daemon, "GET", "/v1/admin/subscribers/acc-1", token=AUDIT_TOKEN)
        del config["admin.tokens"]["audit"]
        write_config(settings.path, config)
        assert await daemon.daemon.reload()
        after = await call(daemon, "GET", "/v1/admin/subscribers/acc-1", token=AUDIT_TOKEN)
        other = await call(daemon, "GET", "/v1/admin/subscribers/acc-1", token=OPS_TOKEN)
    assert before[0] == 404  # authorised; no such subscriber yet
    assert after[0] == 401
    assert other[0] == 404


async def test_put_replaces_a_subscriber_and_patch_changes_only_the_fields_given(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    whole = {
        "email": "Maria@Client.example",
        "username": "maria",
        "name": "Maria",
        "language": "en",
        "timezone": None,
    }
    async with running_daemon(settings) as daemon:
        created = await call(daemon, "PUT", "/v1/admin/subscribers/acc-9", json=whole)
        patched = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-9",
            json={"email": "maria@client.example", "timezone": "Europe/London"},
        )
        read = await call(daemon, "GET", "/v1/admin/subscribers/acc-9")
        cleared = await call(daemon, "PATCH", "/v1/admin/subscribers/acc-9", json={"name": None})
        replaced = await call(
            daemon, "PUT", "/v1/admin/subscribers/acc-9", json={**whole, "language": None}
        )
        ghost = await call(daemon, "PATCH", "/v1/admin/subscribers/ghost", json={"name": "G"})
    assert created[0] == 201
    assert created[1]["email"] == "Maria@client.example"  # the domain is normalised
    assert patched[0] == 200
    assert read == (200, patched[1])
    assert read[1]["email"] == "maria@client.example"
    assert read[1]["timezone"] == "Europe/London"
    assert (read[1]["username"], read[1]["name"], read[1]["language"]) == ("maria", "Maria", "en")
    assert cleared[1]["name"] is None
    assert cleared[1]["timezone"] == "Europe/London"
    # PUT is the whole subscriber: what it says, nothing kept from before.
    assert replaced[0] == 200
    assert (replaced[1]["name"], replaced[1]["language"], replaced[1]["timezone"]) == (
        "Maria",
        None,
        None,
    )
    assert ghost[0] == 404
    assert await db.fetchval("SELECT count(*) FROM subscribers") == 1


async def test_a_put_with_some_fields_names_each_missing_one_and_points_to_patch(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        answer = await call(
            daemon, "PUT", "/v1/admin/subscribers/acc-9", json={"timezone": "Europe/London"}
        )
    assert answer[0] == 422
    assert set(answer[1]["fields"]) == {"email", "username", "name", "language"}
    assert "PATCH" in answer[1]["detail"]
    assert await db.fetchval("SELECT count(*) FROM subscribers") == 0


async def test_a_patch_with_several_bad_fields_names_every_one(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        preferences = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1/preferences",
            json={
                "modes": {"calls": "sometimes", "fax": "daily", "security": "off", "pizza": "off"},
                "addresses": {"fax": ["office@client.example", "nope"], "pizza": "a@b.example"},
                "quiet_hours": "late",
                "language": "fr",
            },
        )
        subscriber = await call(
            daemon,
            "PATCH",
            "/v1/admin/subscribers/acc-1",
            json={"email": "nope", "language": "fr", "timezone": "Mars/Olympus", "colour": 1},
        )
        unchanged = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/preferences")
    assert preferences[0] == 422
    assert set(preferences[1]["fields"]) == {
        "modes.calls",
        "modes.security",
        "modes.pizza",
        "addresses.fax.1",
        "addresses.pizza",
        "quiet_hours",
        "language",
    }
    assert "mandatory" in preferences[1]["fields"]["modes.security"]
    assert unchanged[1]["explicit"] == {}
    assert subscriber[0] == 422
    assert set(subscriber[1]["fields"]) == {"email", "language", "timezone", "colour"}


async def test_invalid_subscriber_fields_are_named(tmp_path: Path, database_url: str) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        invalid = await call(
            daemon,
            "PUT",
            "/v1/admin/subscribers/acc-9",
            json={"email": "not-an-address", "language": "fr", "colour": "blue"},
        )
        malformed = await call(daemon, "PUT", "/v1/admin/subscribers/acc-9", data=b"{nope")
    assert invalid[0] == 422
    # Every problem at once: the bad values, the unknown key and the fields a PUT lacks.
    assert set(invalid[1]["fields"]) == {
        "email",
        "language",
        "colour",
        "username",
        "name",
        "timezone",
    }
    assert malformed[0] == 400


async def test_notices_list_says_why_and_a_failed_notice_can_be_retried(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    smtp_sink.rcpt_replies.append("550 5.1.1 mailbox unavailable")
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        await daemon.post("billing", sample_event("account.created", "acc-1"), BILLING_SECRET)
        async with asyncio.timeout(10):
            while await db.fetchval("SELECT state FROM notices") != "failed":
                await asyncio.sleep(0.05)
        listed = await call(daemon, "GET", "/v1/admin/subscribers/acc-1/notices")
        notice_id = listed[1]["notices"][0]["id"]
        retried = await call(daemon, "POST", f"/v1/admin/notices/{notice_id}/retry")
        await smtp_sink.wait_for(1)
        again = await call(daemon, "POST", f"/v1/admin/notices/{notice_id}/retry")
        unknown = await call(
            daemon, "POST", "/v1/admin/notices/11111111-1111-1111-1111-111111111111/retry"
        )
    notice = listed[1]["notices"][0]
    assert listed[0] == 200
    assert notice["kind"] == "account.created"
    assert notice["state"] == "failed"
    assert notice["last_error"].startswith("550")
    assert "category service (mandatory)" in notice["reasons"]
    assert retried[0] == 202
    assert again[0] == 409
    assert unknown[0] == 404


def test_openapi_document_lists_exactly_the_served_routes(tmp_path: Path) -> None:
    # The app's router is inspected without serving: every route is documented and vice versa.
    app = app_without_services(tmp_path)
    served: set[tuple[str, str]] = set()
    for resource in app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            for inner in resource.get_info()["app"].router.resources():
                for route in inner:
                    # A sub-app's resources already carry its prefix.
                    served.add((route.method.lower(), inner.canonical))
        else:
            for route in resource:
                served.add((route.method.lower(), resource.canonical))
    served = {(m, p) for m, p in served if m != "head"}
    documented = {
        (method, path)
        for path, item in document(app)["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    }
    assert documented == served


async def test_openapi_is_served_without_a_token_and_is_the_one_generated(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with (
        running_daemon(settings) as daemon,
        daemon.session.get(f"{daemon.admin_url}/openapi.json") as response,
    ):
        body = await response.json()
    assert response.status == 200
    assert body["openapi"] == "3.1.0"
    assert "/v1/admin/subscribers/{account_id}" in body["paths"]
    # What is served is what the routes and their models generate, not a copy kept apart.
    assert body == json.loads(json.dumps(document(app_without_services(tmp_path, public=False))))
