"""Delivery worker: claims due notices into its slots and runs a send for each, from the
claim to the recorded outcome, whatever goes wrong between.

A claim is a lease (the notice's `due_at` pushed forward): if this host dies the notice
becomes due again and another host, or this one after a restart, takes it; a heartbeat
renews the leases of sends in progress. LISTEN/NOTIFY wakes the worker at once when a
notice is queued, but a notification can be lost, so the worker also polls.

Neighbours: send.py makes a claimed notice into an email and sends it; outcomes.py records
what happened, and keeps the breaker the claims wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import structlog

from notifyd.delivery.alarm import Alarm
from notifyd.delivery.breaker import Breaker
from notifyd.delivery.outcomes import Outcomes
from notifyd.delivery.pacing import Pacer
from notifyd.delivery.send import Mailing, Sender
from notifyd.mail.transport import Outcome, Relays, Verdict
from notifyd.metrics import Metrics
from notifyd.settings import STREAMS, DatabaseSettings, DeliverySettings
from notifyd.storage import db
from notifyd.storage import notices as notice_store
from notifyd.storage.notices import ClaimedNotice

# Notices are claimed for a paced domain only while its next slot is this close; the
# others stay in the queue instead of waiting in delivery slots other domains could use.
PACING_HORIZON = 0.1

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        database: DatabaseSettings,
        mailing: Mailing,
        owner: str,
        metrics: Metrics,
        clock: Clock = utcnow,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.database = database
        self.mailing = mailing
        self.owner = owner
        self.metrics = metrics
        self.clock = clock
        # One token per process start: records from an earlier life never match.
        self.token = uuid4()
        self._wake = Alarm(clock)
        self._stopping = asyncio.Event()
        self._in_flight: dict[UUID, asyncio.Task[None]] = {}
        # The mail stream of each notice in flight: a paused relay's trial waits for its own.
        self._streams_in_flight: dict[UUID, str] = {}
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.pacer = Pacer(mailing.delivery.domain_rate, mailing.delivery.domain_rates)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sender = Sender(pool, self.pacer, clock, self._monotonic)
        self.outcomes = Outcomes(
            pool=pool,
            token=self.token,
            mailing=mailing,
            metrics=metrics,
            clock=clock,
            monotonic=self._monotonic,
        )
        # Notices sent whose outcome is being recorded: never cancelled.
        self._recording: set[UUID] = set()
        self._awaiting_slots = False
        self._later: datetime | None = None  # the last claim's: when the next is due

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        # Kept: on 3.11 asyncio.get_running_loop() is a getpid() system call, and a notice
        # asked for it several times.
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _monotonic(self) -> float:
        return self._running_loop().time()

    @property
    def delivery(self) -> DeliverySettings:
        return self.mailing.delivery

    @property
    def breaker(self) -> Breaker:
        """The relay's circuit breaker (outcomes.py feeds it; claims wait while it is open)."""
        return self.outcomes.breaker

    def reconfigure(self, mailing: Mailing) -> Relays:
        """Take new settings on reload; returns the old transport for the caller to close.
        Sends in progress finish with what they started with."""
        old = self.mailing.transport
        self.mailing = mailing
        self.outcomes.configure(mailing)
        self.pacer.rate = mailing.delivery.domain_rate
        self.pacer.rates = mailing.delivery.domain_rates
        self.wake()
        return old

    async def release_held(self) -> int:
        """Make the notices held by the open breaker due now (the relay settings changed)."""
        if not self.outcomes.held:
            return 0
        count = await self.outcomes.release_held()
        self.wake()
        return count

    def wake(self) -> None:
        self._wake.set()

    def wake_for(self, due_at: datetime) -> None:
        """Notices were queued here, the first due at `due_at`: wake if it would be late."""
        self._wake.wake_for(due_at, self.delivery.poll_seconds)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="notifyd-claim"),
            asyncio.create_task(self._listen_loop(), name="notifyd-listen"),
            asyncio.create_task(self._heartbeat_loop(), name="notifyd-heartbeat"),
        ]

    async def stop(self, grace: float) -> None:
        """Stop claiming; sends in progress get `grace` seconds to finish, the rest go back."""
        self._stopping.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        # Bounded: a loop that ignored its cancellation must not hold the stop forever.
        _done, stuck = await asyncio.wait(self._tasks, timeout=5)
        if stuck:
            log.error("worker tasks did not stop", tasks=[t.get_name() for t in stuck])
        if self._in_flight:
            log.info("waiting for sends in progress", count=len(self._in_flight), grace=grace)
            _done, pending = await asyncio.wait(list(self._in_flight.values()), timeout=grace)
            recording = {self._in_flight[i] for i in self._recording if i in self._in_flight}
            for task in pending - recording:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
                log.warning("sends cut off at shutdown; they will be retried", count=len(pending))
                self.metrics.possible_duplicates.inc(len(pending))
        # Also catches a claim whose query committed while the claim loop was being cancelled.
        await self._release_claims()
        if self._listener is not None:
            with contextlib.suppress(*db.UNAVAILABLE):
                await asyncio.wait_for(self._listener.close(), timeout=2)

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                claimed = await self._claim()
                backoff = 0.1
            except db.UNAVAILABLE as error:
                log.warning("database unavailable for delivery", error=type(error).__name__)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.delivery.poll_seconds)
                continue
            if claimed is None or claimed:
                continue
            # Fewer than asked for: nothing else is due now, so no second claim to find
            # that out (a round trip between a notice's commit and its claim, under load).
            await self._sleep(self._idle_wait())

    async def _claim(self) -> bool | None:
        """Claim what is due into the free slots: True when it took as many as it asked for
        (more may be due), False when fewer, or None when it waited instead (slots or the
        relay busy), which says nothing about what is due: no idle wait."""
        free = self.delivery.concurrency - len(self._in_flight)
        if free <= 0 or (self._in_flight and free < self.delivery.concurrency // 4):
            # Every slot busy: back-pressure stays in the queue, not in memory. Or a few
            # free: wait for a quarter, so that a backlog is claimed in batches rather than
            # a round trip for each slot freed; those in flight keep the relay busy.
            await self._wait_for_slots(self.delivery.poll_seconds)
            return None
        loop_now = self._monotonic()
        busy = set(self._streams_in_flight.values())
        paused, trials, wait = self.outcomes.paused_streams(loop_now, busy)
        wait = min(wait, self.delivery.poll_seconds)
        if len(paused) == len(STREAMS):
            # Every relay refuses everything: paused; after the cooldown, one notice.
            if not trials:
                await self._wait_for_slots(max(wait, 0.05))
                return None
            return await self._claim_some(1, paused - {trials[0]}, loop_now)
        for stream in trials:
            # A paused relay's trial notice, while the other stream's notices go on.
            await self._claim_some(1, set(STREAMS) - {stream}, loop_now)
        return await self._claim_some(min(free, self.delivery.batch_size), paused, loop_now)

    async def _claim_some(self, asked: int, paused: set[str], loop_now: float) -> bool:
        """Claim up to `asked` due notices but those of the `paused` streams, and start
        them; whether it took as many as it asked for."""
        async with self.pool.acquire() as conn:
            claim = await notice_store.claim_due(
                conn,
                asked,
                self.owner,
                self.token,
                self.delivery.lease_seconds,
                self.pacer.throttled(loop_now, PACING_HORIZON),
                self.mailing.off_by_default,
                notice_store.StreamTerms(frozenset(paused), self.mailing.marketing_kinds),
            )
        self._later = claim.later
        for notice in claim.notices:
            self._start(notice)
        return len(claim.notices) == asked

    def claim_terms(self) -> notice_store.ClaimTerms | None:
        """What a commit that queues notices due now may claim for this worker as it queues
        them: as many as its free slots, none while the relay refuses everything (the
        breaker's pause and trial stay with the claim loop) or delivery is stopping."""
        free = self.delivery.concurrency - len(self._in_flight)
        paused = any(b.is_open for b in self.outcomes.breakers.values())
        if free <= 0 or paused or self._stopping.is_set():
            return None
        skip = self.pacer.throttled(self._monotonic(), PACING_HORIZON)
        return notice_store.ClaimTerms(
            self.owner, self.token, self.delivery.lease_seconds, free, frozenset(skip)
        )

    def adopt(self, notices: Sequence[notice_store.ClaimedNotice]) -> None:
        """Send notices claimed for this worker by a commit (`claim_terms`). Two commits
        may each have been offered the same free slots: in flight can pass `concurrency`
        by what they queued, for as long as those take."""
        if self._stopping.is_set():  # their claims go back with the others'
            return
        for notice in notices:  # just inserted: no claim of this worker's has them
            self._start(notice)

    def _start(self, notice: notice_store.ClaimedNotice) -> None:
        # A fresh context: a task copies its creator's, and `adopt` runs in the commit of
        # some webhook, whose request_id would otherwise be on every line of this send.
        task = self._running_loop().create_task(
            self._deliver(notice), name=f"notice-{notice.id}", context=contextvars.Context()
        )
        self._in_flight[notice.id] = task
        self._streams_in_flight[notice.id] = self.mailing.stream_of(notice)
        task.add_done_callback(functools.partial(self._finished, notice.id))

    def _finished(self, notice_id: UUID, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(notice_id, None)
        self._streams_in_flight.pop(notice_id, None)
        if self._awaiting_slots:
            # Only a worker waiting for slots needs to hear of one: an idle worker is woken
            # by what is queued, and waking it for every send that ends would turn each one
            # into a claim and a "next due" query.
            self._wake.set()

    def _idle_wait(self) -> float:
        """How long an idle worker sleeps unless woken: until the earliest notice the last
        claim left is due, at most `poll_seconds` (which also bounds how late a notice whose
        wake-up was lost is seen)."""
        wait = self.delivery.poll_seconds
        if self._later is not None:
            wait = min(wait, max((self._later - self.clock()).total_seconds(), 0.01))
        # What is due may be a paced domain's: then the wait is the pace, not a busy loop.
        paced = self.pacer.release_in(self._monotonic(), PACING_HORIZON)
        return max(wait, min(paced, self.delivery.poll_seconds))

    async def _wait_for_slots(self, seconds: float) -> None:
        """Sleep until a send ends (or something is queued, or `seconds` pass)."""
        self._awaiting_slots = True
        try:
            await self._sleep(seconds)
        finally:
            self._awaiting_slots = False

    async def _sleep(self, seconds: float) -> None:
        await self._wake.sleep(seconds)

    # -- one notice -------------------------------------------------------------------------

    async def _deliver(self, notice: ClaimedNotice) -> None:
        """One notice, from its claim to its recorded outcome, whatever goes wrong between:
        an exception that ended this task would leave the notice `sending` until its lease
        ran out, then again at every lease, its attempts rising and never failed."""
        try:
            await self._send(notice)
        except Exception as error:
            # A fault nobody classified (a bug, a library's surprise): retried with back-off,
            # so the notice's lifetime still ends it. Logged without the message, which may
            # quote the address; where it was raised is what a developer needs.
            frame = traceback.extract_tb(error.__traceback__)[-1]
            log.error(
                "delivery failed unexpectedly; the notice will be retried",
                notice_id=str(notice.id),
                error=type(error).__name__,
                raised_at=f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}",
            )
            reason = f"internal error: {type(error).__name__}: {error}"
            try:
                # A no-op if the outcome was recorded before the fault (the claim is gone).
                await self.outcomes.record(
                    notice, Outcome(Verdict.RETRY, reason, "internal"), from_smtp=False
                )
            except Exception as again:
                log.error(
                    "could not record a delivery outcome; the notice is retried when its "
                    "lease ends",
                    notice_id=str(notice.id),
                    error=type(again).__name__,
                )

    async def _send(self, notice: ClaimedNotice) -> None:
        bound = log.bind(
            notice_id=str(notice.id),
            event_id=str(notice.event_id) if notice.event_id else None,
            kind=notice.kind,
            attempt=notice.attempts,
        )
        # Recorded inside the block: the connection's next message is not let through
        # until this outcome is committed (at most one duplicate a connection on a crash).
        async with self.sender.sending(notice, self.mailing, bound) as attempt:
            if not attempt.from_smtp:  # decided before any SMTP: nothing was sent
                await self.outcomes.settle(notice, attempt)
                return
            # The send happened: from here `stop` lets the task finish (no shield: its extra
            # task costs loop turns, and this wait is on the connection's path).
            self._recording.add(notice.id)
            try:
                outcome = await self.outcomes.settle(notice, attempt)
            finally:
                self._recording.discard(notice.id)
        bound.info("delivery", outcome=outcome.verdict.value, reply=outcome.reply[:200])

    async def _release_claims(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                released = await notice_store.release_claims(conn, self.token)
        except db.UNAVAILABLE:
            log.warning("could not hand back claims; they return when their lease ends")
            return
        if released:
            log.info("claims handed back for another host or the next start", count=released)

    async def _heartbeat_loop(self) -> None:
        """Renews the leases of sends in progress, so the lease can be short (a crashed host's
        notices come back quickly) without a slow relay making another host resend."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.delivery.lease_seconds / 3)
            if not self._in_flight:
                continue
            try:
                async with self.pool.acquire() as conn:
                    await notice_store.renew_leases(conn, self.token, self.delivery.lease_seconds)
            except db.UNAVAILABLE as error:
                log.warning("could not renew leases", error=type(error).__name__)

    # -- wake-ups -------------------------------------------------------------------------------

    async def _listen_loop(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            lost = asyncio.Event()

            def on_lost(_conn: object, lost: asyncio.Event = lost) -> None:
                lost.set()

            try:
                conn = await db.connect(self.dsn, self.database)
                self._listener = conn
                conn.add_termination_listener(on_lost)
                await conn.add_listener(notice_store.CHANNEL, lambda *_args: self._wake.set())
                delay = 0.5
                self._wake.set()  # anything queued while we were not listening
                while not lost.is_set() and not self._stopping.is_set():
                    # A LISTEN connection can die without a word: probe it now and then.
                    # (asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the
                    # cancellation that stop() sends when it lands as the query completes.)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.delivery.poll_seconds):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(5):
                            await conn.execute("SELECT 1")
            except (*db.UNAVAILABLE, asyncpg.PostgresError) as error:
                log.warning("notice listener lost, reconnecting", error=type(error).__name__)
            finally:
                if self._listener is not None:
                    self._listener.terminate()
                    self._listener = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
