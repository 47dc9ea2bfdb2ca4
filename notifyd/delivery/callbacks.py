"""Delivery callbacks out: posts the `callbacks` rows (what became of a notice of a source's
event: notice.delivered, notice.failed, notice.dead_lettered) to the source's
[sources.<name>.callback] URL as signed Standard Webhooks, until the receiver answers 2xx.

Every host runs one sender. It claims due rows with a lease (FOR UPDATE SKIP LOCKED, as the
worker claims notices), so a row is posted by one host at a time, and a host that dies
leaves its rows due again when the lease ends; a clean stop hands them back at once. A
failed post (not 2xx, a network fault, `timeout_seconds` passed) is retried with back-off
([callbacks] retry_initial_seconds doubling up to retry_max_seconds, ±20 %); past the
source's `max_age_hours` the row is given up, with why in `last_error`. Every post of a row
carries the same webhook-id (the row's id), for the receiver to dedupe. The URL and the
secret are read from the running config at each post, never stored; log lines name the
source, never the URL, the secret or anything of the subscriber.

Neighbours: the rows are written with their notice's outcome (outcomes.py, through
storage/notices.py); storage/callbacks.py claims and records them; the daemon starts and
stops the sender, and outcomes.py wakes it when it wrote a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import aiohttp
import asyncpg
import structlog
from standardwebhooks import Webhook

from notifyd.metrics import Metrics
from notifyd.rules.schedule import retry_delay
from notifyd.settings import CallbackSettings, Settings
from notifyd.storage import callbacks as store
from notifyd.storage import db
from notifyd.storage.callbacks import Callback

log = structlog.get_logger(__name__)

# What a receiver may answer is read and dropped: at most this much of it.
_ANSWER_BYTES = 64 * 1024


def payload(callback: Callback) -> str:
    """The body posted, the same at every post of the row (docs/integrations.md): no
    address, no number, nothing of the subscriber."""
    return json.dumps(
        {
            "type": callback.type,
            "timestamp": _rfc3339(callback.occurred_at),
            "data": {
                "event_id": str(callback.event_id),
                "webhook_id": callback.source_webhook_id,
                "event_type": callback.event_type,
                "notice_id": str(callback.notice_id),
                "state": callback.notice_state,
                "category": callback.category,
                "smtp_code": callback.smtp_code,
            },
        },
        separators=(",", ":"),
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class CallbackSender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Callable[[], Settings],
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        # One per process start, as the worker's: a claim of an earlier life never matches.
        self.token = uuid4()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        """Look for callbacks now (a notice's outcome has just written one)."""
        self._wake.set()

    async def start(self) -> None:
        # No redirects followed and no cookies kept: a callback goes where it is configured.
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), headers={"User-Agent": "notifyd"}
        )
        self._task = asyncio.create_task(self._run(), name="notifyd-callbacks")

    async def stop(self) -> None:
        """Posts in progress are cut off (the receiver dedupes the repeat by its
        webhook-id); this host's claims go back at once."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)
        try:
            async with self.pool.acquire() as conn:
                await store.release_claims(conn, self.token)
        except db.UNAVAILABLE:
            log.warning("could not hand back callback claims; they return when their lease ends")
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                wait = await self._round()
                backoff = 0.1
            except db.UNAVAILABLE as error:
                log.warning("database unavailable for callbacks", error=type(error).__name__)
                wait, backoff = backoff, min(backoff * 2, self.settings().callbacks.poll_seconds)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                self._wake.clear()

    async def _round(self) -> float:
        """Post what is due; how long to wait before the next round (0: at once)."""
        settings = self.settings()
        sending = settings.callbacks
        async with self.pool.acquire() as conn:
            claimed = await store.claim_due(
                conn, sending.concurrency, self.token, sending.lease_seconds
            )
            due = None if claimed else await store.next_due(conn)
        if claimed:
            await asyncio.gather(*(self._settle(c, settings) for c in claimed))
            return 0.0
        wait = sending.poll_seconds
        if due is not None:
            wait = min(wait, max((due - self.clock()).total_seconds(), 0.01))
        return wait

    async def _settle(self, callback: Callback, settings: Settings) -> None:
        """One claimed callback posted, and what came of it recorded; a fault of the
        database leaves it to its lease."""
        try:
            await self._post_and_record(callback, settings)
        except (*db.UNAVAILABLE, asyncpg.PostgresError) as error:
            log.warning(
                "could not record a callback; it is posted again when its lease ends",
                callback_id=str(callback.id),
                error=type(error).__name__,
            )

    async def _post_and_record(self, callback: Callback, settings: Settings) -> None:
        source = settings.sources.get(callback.source)
        target = source.callback if source is not None else None
        if target is None:
            await self._give_up(callback, "the source has no callback configured any more")
            return
        if self._too_old(callback, target):
            await self._give_up(callback, self._why_too_old(callback))
            return
        delivered, answer = await self._post(callback, target)
        bound = log.bind(
            callback_id=str(callback.id),
            notice_id=str(callback.notice_id),
            source=callback.source,
            type=callback.type,
            attempt=callback.attempts,
            answer=answer,
        )
        async with self.pool.acquire() as conn:
            if delivered:
                await store.mark_delivered(conn, callback.id, self.token, answer)
                self.metrics.callbacks.labels("delivered").inc()
                bound.info("callback delivered")
                return
            if self._too_old(callback, target):
                why = self._why_too_old(replace(callback, last_error=answer))
                await self._abandon(conn, callback, why)
                return
            delay = retry_delay(callback.attempts, settings.callbacks)
            due_at = self.clock() + timedelta(seconds=delay)
            await store.mark_retry(conn, callback.id, self.token, due_at, answer)
        self.metrics.callbacks.labels("retry").inc()
        bound.warning("callback not acknowledged; will retry", retry_in=round(delay, 1))

    async def _post(self, callback: Callback, target: CallbackSettings) -> tuple[bool, str]:
        """(acknowledged, the answer: an HTTP status or the kind of fault)."""
        assert self._session is not None
        body = payload(callback)
        webhook_id = str(callback.id)
        # Signed with the wall clock, which is the receiver's tolerance check's.
        now = datetime.now(UTC)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(target.secret).sign(webhook_id, now, body),
        }
        try:
            async with self._session.post(
                target.url,
                data=body.encode(),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=target.timeout_seconds),
            ) as response:
                await response.content.read(_ANSWER_BYTES)
                return 200 <= response.status < 300, f"HTTP {response.status}"
        except TimeoutError:
            return False, f"timeout after {target.timeout_seconds:g} s"
        except (aiohttp.ClientError, OSError) as error:
            return False, type(error).__name__

    def _too_old(self, callback: Callback, target: CallbackSettings) -> bool:
        return self._age_hours(callback) >= target.max_age_hours

    def _age_hours(self, callback: Callback) -> float:
        return (self.clock() - callback.occurred_at).total_seconds() / 3600

    def _why_too_old(self, callback: Callback) -> str:
        last = f"; last answer: {callback.last_error}" if callback.last_error else ""
        return f"given up after {self._age_hours(callback):.1f} h (max_age_hours){last}"

    async def _give_up(self, callback: Callback, why: str) -> None:
        async with self.pool.acquire() as conn:
            await self._abandon(conn, callback, why)

    async def _abandon(self, conn: db.Conn, callback: Callback, why: str) -> None:
        await store.mark_abandoned(conn, callback.id, self.token, why)
        self.metrics.callbacks.labels("abandoned").inc()
        log.error(
            "callback given up",
            callback_id=str(callback.id),
            notice_id=str(callback.notice_id),
            source=callback.source,
            type=callback.type,
            attempts=callback.attempts,
            why=why,
        )
