"""The privacy entry points of issue 18 tried as an attacker would, each case a bug this pass
found: a page POST whose body is no readable form (an unknown charset, broken multipart, a
file where text belongs) was a 500 whose log line held the link; an audit `before` whose
offset leaves the calendar was a 500; a fresh link took longer to ask for for an account
that exists than for one that does not; a non-UTF-8 account id on the command line ended in
a traceback. Every answer here is a 4xx saying what happened, and no log line holds a link,
an address or a number."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from notifyd.catalogue.samples import sample_event
from notifyd.links import Links
from notifyd.rules.links import RENEWAL_KIND
from tests.conftest import (
    BILLING_SECRET,
    WAIT,
    SmtpSink,
    eventually,
    load_config,
    running_daemon,
    signed_request,
    spawn_daemon,
    write_config,
)
from tests.integration.admin_support import admin_config, call
from tests.integration.daemon_support import form_token, welcome
from tests.integration.links_support import NEW_KEY, ask_fresh_link, days_ago, link_settings
from tests.integration.privacy_support import notifyd_command

ADDRESS = "ana.popescu@example.com"
NUMBER = "+40721555123"
FORM = "application/x-www-form-urlencoded"
# Bodies no browser sends from our pages, each of which aiohttp's form reader raised on.
UNREADABLE: dict[str, tuple[bytes, str]] = {
    "unknown charset": (b"form_token=x", f"{FORM}; charset=nonsense"),
    "multipart without boundary": (b"garbage", "multipart/form-data"),
    "multipart, boundary never seen": (b"garbage", "multipart/form-data; boundary=b"),
    "multipart part in an unknown charset": (
        b'--b\r\nContent-Disposition: form-data; name="form_token"\r\n'
        b"Content-Type: text/plain; charset=nonsense\r\n\r\nx\r\n--b--\r\n",
        "multipart/form-data; boundary=b",
    ),
}


def _file_field(name: str, token: str) -> aiohttp.FormData:
    """The page's form token, and `name` sent as a file instead of text."""
    form = aiohttp.FormData()
    form.add_field("form_token", token)
    form.add_field(name, b"22:00-08:00", filename="x.txt", content_type="text/plain")
    return form


async def _post(
    session: aiohttp.ClientSession, url: str, data: Any, content_type: str | None = None
) -> tuple[int, str, str]:
    headers = {"Content-Type": content_type} if content_type else {}
    async with session.post(url, data=data, headers=headers) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_a_page_post_that_is_no_readable_form_is_refused_and_logs_no_link(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    settings = link_settings(tmp_path, database_url, smtp_sink)
    daemon = await spawn_daemon(settings.path)
    links = Links(NEW_KEY, daemon.base_url)
    preferences = links.preferences_url("acc-1", issued=days_ago(1))
    expired = links.preferences_url("acc-1", issued=days_ago(90))
    unsubscribe = links.unsubscribe_url("acc-1", ADDRESS, issued=days_ago(1))
    renew = f"{daemon.base_url}/v1/links/{expired.rsplit('/', 1)[1]}/renew"
    answers: dict[str, tuple[int, str, str]] = {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session:
            event = sample_event("account.created", "acc-1", email=ADDRESS, phone=NUMBER)
            body, headers = signed_request(event, BILLING_SECRET)
            async with session.post(
                f"{daemon.base_url}/v1/webhooks/billing", data=body, headers=headers
            ) as response:
                assert response.status == 202
            async with session.get(preferences) as page:
                token = form_token(await page.text())
            for url in (preferences, unsubscribe, renew):
                for what, (raw, content_type) in UNREADABLE.items():
                    answers[f"{url[-60:]} {what}"] = await _post(session, url, raw, content_type)
            answers["preferences, quiet hours as a file"] = await _post(
                session, preferences, _file_field("quiet_hours", token)
            )
            # Past aiohttp's 8,190 bytes a line: its parser answers and logs the line's start.
            async with session.get(f"{preferences}?{'a' * 9000}") as response:
                assert response.status == 400
            long_token = {"Authorization": f"Bearer {NEW_KEY}{'a' * 9000}"}
            async with session.get(f"{daemon.admin_url}/v1/admin/audit", headers=long_token) as r:
                assert r.status == 400
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        await daemon.wait_exit()
    problems = {what: answer for what, answer in answers.items() if not _refused_page(answer)}
    assert problems == {}
    # A mail provider's one-click POST has no browser headers: an unreadable body is no
    # reason to keep sending offers. The preference form saved nothing.
    consent = await db.fetchval("SELECT count(*) FROM consent_events WHERE NOT granted")
    assert consent >= 1
    assert await db.fetchval("SELECT preferences FROM subscribers") == {}
    secrets = [ADDRESS, "40721555123", NEW_KEY] + [
        link.rsplit("/", 1)[1] for link in (preferences, expired, unsubscribe)
    ]
    leaks = [line for line in daemon.lines if any(s in json.dumps(line) for s in secrets)]
    assert leaks == []


def _refused_page(answer: tuple[int, str, str]) -> bool:
    """A 4xx page, or the unsubscribe done (200) for a POST that is no browser's."""
    status, content_type, text = answer
    return status < 500 and content_type.startswith("text/html") and "Traceback" not in text


async def test_an_audit_page_before_a_moment_outside_the_calendar_is_a_422(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        answers = [
            await call(daemon, "GET", f"/v1/admin/{path}?before={moment}")
            for path in ("audit", "dead-letters", "subscribers/acc-1/events")
            for moment in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00%2B23:59")
        ]
    assert [status for status, _ in answers] == [422] * 6
    assert all("before" in body["fields"] for _, body in answers)


async def test_the_fresh_link_answer_does_not_wait_for_the_account(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    """The answer is sent before the email is queued, so its time says nothing of the
    account: waiting for the queueing, asking for an account that exists (a transaction, a
    row lock, a count, an insert, a wake-up) answered in 2-24 ms, for one that does not in
    1-3 ms (8 asks each), which told an erased account from a kept one. Shown here with the
    subscriber's row locked by another transaction: the answer comes all the same, and the
    email is queued once the lock is gone."""
    settings = link_settings(tmp_path, database_url, smtp_sink)
    async with running_daemon(settings) as daemon:
        await welcome(daemon, smtp_sink)
        locker = await asyncpg.connect(database_url)
        try:
            async with locker.transaction():
                await locker.execute(
                    "SELECT 1 FROM subscribers WHERE account_id = 'acc-1' FOR UPDATE"
                )
                async with asyncio.timeout(WAIT / 3):
                    known = await _ask_fresh_link(daemon, "acc-1")
                    unknown = await _ask_fresh_link(daemon, "acc-nobody")
                assert await _renewals(db) == 0
        finally:
            await locker.close()
        assert await eventually(lambda: _renewals(db), "the fresh link queued") == 1
        await smtp_sink.wait_for(2)
    assert known == unknown


async def _renewals(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM notices WHERE kind = $1", RENEWAL_KIND)
    return count


async def _ask_fresh_link(daemon: Any, account: str) -> tuple[int, str]:
    """Press the button of the page of an expired link of `account`: the answer."""
    link = Links(NEW_KEY, daemon.base_url).preferences_url(account, issued=days_ago(90))
    async with daemon.session.get(link) as page:
        text = await page.text()
    status, answer = await ask_fresh_link(daemon, text)
    return status, re.sub(r'href="[^"]*"', "", answer)


async def test_a_command_given_an_account_id_that_is_not_text_says_so_in_one_line(
    tmp_path: Path, database_url: str
) -> None:
    path = write_config(tmp_path / "cli.toml", admin_config(tmp_path, database_url, None))
    # Bytes that are not UTF-8 reach Python as lone surrogates, which PostgreSQL refuses.
    for action in ("export", "erase", "restrict", "lift"):
        code, out, err = await notifyd_command(path, "privacy", action, "acc-\udcff")
        assert (code, out) == (2, ""), err
        assert "Traceback" not in err
        assert err.strip().splitlines() == [
            "notifyd privacy: ACCOUNT_ID must not contain a lone surrogate (it is not text)"
        ]


async def test_a_command_against_a_database_that_does_not_answer_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    # NOTIFYD_DATABASE_URL or [database] url pointing at a server that is down: a traceback
    # and exit 1 before, where `migrate` already said it in one line with exit 69.
    with socket.socket() as bound:  # bound, not listening: every connection is refused
        bound.bind(("127.0.0.1", 0))
        url = f"postgresql://notifyd@127.0.0.1:{bound.getsockname()[1]}/notifyd"
        path = write_config(tmp_path / "cli.toml", admin_config(tmp_path, url, None))
        for action in ("export", "restrict"):
            code, out, err = await notifyd_command(path, "privacy", action, "acc-1")
            assert (code, out) == (69, ""), err
            assert "Traceback" not in err
            assert (
                err.strip()
                .splitlines()[-1]
                .startswith("notifyd privacy: database unreachable (ConnectionRefusedError): ")
            ), err
