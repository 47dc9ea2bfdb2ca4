"""A source's callback receiver for the tests of delivery callbacks out (issue 19): a real
aiohttp server in the test process that verifies each post's Standard Webhooks signature
with the reference library and answers the statuses a test scripts, and the config that
points a source's callback at it."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import eventually
from tests.integration.admin_support import admin_config

CALLBACK_SECRET = "whsec_" + base64.b64encode(b"callback-test-secret-0123456789").decode()
# A path no log line may show (a receiver's URL can carry a token).
CALLBACK_PATH = "/hook/path-token-7f3a9c"


@dataclass(frozen=True)
class Post:
    webhook_id: str
    body: dict[str, Any]
    raw: bytes
    verified: bool
    answered: int


@dataclass
class Receiver:
    port: int = 0
    # Statuses to answer, in order; once used up, `then`.
    answers: deque[int] = field(default_factory=deque)
    then: int = 204
    posts: list[Post] = field(default_factory=list)
    # Posts from this one on (0-based) are held unanswered (recorded as answered 0) until
    # `released`; None: none.
    hang_from: int | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    @property
    def acknowledged(self) -> list[Post]:
        return [p for p in self.posts if 200 <= p.answered < 300]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            Webhook(CALLBACK_SECRET).verify(raw, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        status = self.answers.popleft() if self.answers else self.then
        hung = self.hang_from is not None and len(self.posts) >= self.hang_from
        body = json.loads(raw)
        answered = 0 if hung else status
        self.posts.append(Post(headers.get("webhook-id", ""), body, raw, verified, answered))
        if hung:
            await self.released.wait()
        return web.Response(status=status)


@asynccontextmanager
async def callback_receiver(
    answers: Iterable[int] = (), then: int = 204
) -> AsyncIterator[Receiver]:
    receiver = Receiver(answers=deque(answers), then=then)
    app = web.Application()
    app.router.add_post(CALLBACK_PATH, receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        receiver.released.set()
        await runner.cleanup()


def callback_config(
    tmp_path: Path,
    database_url: str,
    smtp_port: int | None,
    receiver: Receiver,
    source: str = "pbx",
    **callback: Any,
) -> dict[str, Any]:
    """The admin tests' config with `source`'s callback posting to `receiver`, retried
    quickly."""
    config = admin_config(tmp_path, database_url, smtp_port)
    config[f"sources.{source}.callback"] = {
        "url": receiver.url,
        "secret": CALLBACK_SECRET,
        "timeout_seconds": 5,
        **callback,
    }
    config["callbacks"] = {
        "poll_seconds": 0.2,
        "retry_initial_seconds": 0.1,
        "retry_max_seconds": 0.3,
    }
    return config


async def callback_rows(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch("SELECT * FROM callbacks ORDER BY occurred_at, id")


async def wait_callback_state(db: asyncpg.Connection, state: str, count: int = 1) -> list[Any]:
    """The callbacks once `count` of them are in `state`."""

    async def check() -> list[Any] | None:
        rows = await callback_rows(db)
        return rows if sum(r["state"] == state for r in rows) >= count else None

    return await eventually(check, f"{count} callback(s) {state}")
