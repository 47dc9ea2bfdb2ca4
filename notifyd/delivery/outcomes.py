"""What a send's outcome becomes: the notice recorded sent, retried or failed (past its
lifetime a retry fails; a hard bounce does what bounces.py says), after the relay's
circuit breaker has had its say, with the delivery metrics.

Neighbours: send.py says what happened to a notice; worker.py, which holds the claims,
asks for it to be recorded and reads the breaker before it claims.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg
import structlog

from notifyd.bounces import hard_bounce
from notifyd.delivery.breaker import MAX_COOLDOWN, Breaker
from notifyd.delivery.enclosing import KINDS_WITH_FILES
from notifyd.delivery.send import Attempt, Mailing
from notifyd.delivery.sent_records import SentRecords
from notifyd.mail.transport import Outcome, Verdict
from notifyd.metrics import Metrics
from notifyd.rules.schedule import retry_delay
from notifyd.settings import TRANSACTIONAL
from notifyd.storage import addresses as address_store
from notifyd.storage import attachments as attachment_store
from notifyd.storage import callbacks as callback_store
from notifyd.storage import db
from notifyd.storage import notices as notice_store
from notifyd.storage.notices import ClaimedNotice

log = structlog.get_logger(__name__)

# Faults of a record that another try may not meet.
_TRANSIENT = (*db.UNAVAILABLE, asyncpg.TransactionRollbackError)


class Outcomes:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        token: UUID,
        mailing: Mailing,
        metrics: Metrics,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self.pool = pool
        # The claim token of this process: only the holder of a claim records its outcome.
        self.token = token
        self.mailing = mailing
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        # A breaker a relay: each stream's, shared by streams that share a transport, so a
        # marketing relay refusing everything pauses only the offers.
        self.breakers: dict[str, Breaker] = self._breakers(mailing, {})
        # Notices the open breaker put back with a due time at the end of its pause.
        self.held: set[UUID] = set()
        # Refusals a delivery showed were the notices' own: their held callbacks may go.
        self._confirmed: list[UUID] = []
        self._sent = SentRecords(pool, token, lambda: self.mailing.callback_sources)
        # Called when an outcome wrote a callback row (the sender posts it at once).
        self.on_told: Callable[[], None] = lambda: None

    @property
    def breaker(self) -> Breaker:
        """The transactional relay's breaker (the only one without [smtp.streams])."""
        return self.breakers[TRANSACTIONAL]

    def breaker_of(self, notice: ClaimedNotice) -> Breaker:
        return self.breakers[self.mailing.stream_of(notice)]

    @staticmethod
    def _breakers(mailing: Mailing, old: dict[str, Breaker]) -> dict[str, Breaker]:
        """A breaker for each stream, one a transport; a stream keeps its old breaker (and
        its state) where it has one of its own."""
        made: dict[int, Breaker] = {}
        breakers: dict[str, Breaker] = {}
        for stream, transport in mailing.transport.by_stream.items():
            if id(transport) not in made:
                kept = old.get(stream)
                shared = kept is not None and any(kept is b for b in made.values())
                made[id(transport)] = kept if kept is not None and not shared else Breaker(0, 0)
            breaker = breakers[stream] = made[id(transport)]
            breaker.threshold = mailing.delivery.breaker_threshold
            breaker.cooldown = mailing.delivery.breaker_cooldown_seconds
        return breakers

    def paused_streams(self, now: float, busy: set[str]) -> tuple[set[str], list[str], float]:
        """The streams whose relay's breaker keeps their notices queued now; of those, the
        ones whose relay may be tried with one notice (half open, and no notice of a stream
        on that relay among `busy`, the streams of the notices in flight); and the seconds
        until the next such trial."""
        paused: set[str] = set()
        trials: list[str] = []
        wait = MAX_COOLDOWN
        for stream, breaker in self.breakers.items():
            allowed = breaker.allowance(now)
            if allowed is None:
                continue
            paused.add(stream)
            sharing = {s for s, b in self.breakers.items() if b is breaker}
            if allowed and not busy & sharing:
                trials.append(stream)
            wait = min(wait, breaker.wait(now))
        return paused, trials, wait

    def configure(self, mailing: Mailing) -> None:
        """New settings on reload: the outcomes recorded from now on follow them."""
        old = self.mailing
        self.mailing = mailing
        self.breakers = self._breakers(mailing, self.breakers)
        for stream, breaker in self.breakers.items():
            if breaker.is_open and old.transport[stream] is not mailing.transport[stream]:
                # New relay settings (the fixed password): try again now rather than later;
                # `release_held` makes the held notices due.
                breaker.open_until = 0.0

    async def release_held(self) -> int:
        """Make the notices held by the open breaker due now (the relay settings changed)."""
        if not self.held:
            return 0
        held, self.held = list(self.held), set()
        async with self.pool.acquire() as conn:
            return await notice_store.release_held(conn, held)

    async def settle(self, notice: ClaimedNotice, attempt: Attempt) -> Outcome:
        """Record what happened to the notice; returns the outcome recorded (a refusal the
        breaker holds is a retry)."""
        if not attempt.from_smtp:
            await self.record(notice, attempt.outcome, attempt.retry_after, from_smtp=False)
            return attempt.outcome
        sent = attempt.outcome
        if sent.error_kind:
            self.metrics.smtp_errors.labels(sent.error_kind).inc()
        if sent.possibly_sent:
            self.metrics.possible_duplicates.inc()
        outcome, retry_after, restore = self._judge(notice, sent)
        await self.record(notice, outcome, retry_after, restore=restore)
        if self._confirmed:
            await self._confirm_failures()
        return outcome

    async def _confirm_failures(self) -> None:
        """The refusals of a streak a delivery ended were the notices' own: their
        notice.failed callbacks, held while the breaker might withdraw them, go now."""
        confirmed, self._confirmed = self._confirmed, []
        if not self.mailing.callback_sources:
            return
        try:
            async with self.pool.acquire() as conn:
                due = await callback_store.confirm_failures(conn, confirmed)
        except db.UNAVAILABLE:
            return  # they go when their hold ends
        if due:
            self.on_told()

    def _judge(
        self, notice: ClaimedNotice, outcome: Outcome
    ) -> tuple[Outcome, float | None, list[UUID]]:
        """The outcome through the circuit breaker: while the relay refuses everything a 5xx
        is the relay's, not the notice's, so the notice waits (and so do the notices the
        same streak already failed: returned to be queued again)."""
        now = self.monotonic()
        restore: list[UUID] = []
        breaker = self.breaker_of(notice)
        was_open = breaker.is_open
        if outcome.verdict is Verdict.SENT:
            self._confirmed.extend(breaker.succeeded())
            if was_open:
                self.held.clear()
        elif outcome.error_kind in ("auth", "refused"):
            breaker.refused_us(now)
        elif outcome.verdict is Verdict.FAILED and outcome.error_kind == "5xx":
            restore = breaker.refused(notice.id, notice.recipient, now) or []
        paused = any(b.is_open for b in self.breakers.values())
        self.metrics.delivery_paused.set(1 if paused else 0)
        if breaker.is_open and not was_open:
            self.metrics.breaker_trips.inc()
            log.error(
                "the relay refuses everything: delivery paused, notices kept",
                stream=self.mailing.stream_of(notice),
                reply=outcome.reply[:200],
                pause_seconds=round(breaker.wait(now), 1),
            )
        if breaker.is_open and outcome.verdict is not Verdict.SENT:
            self.held.add(notice.id)
            self.held.update(restore)
            held = Outcome(Verdict.RETRY, outcome.reply, outcome.error_kind)
            return held, max(breaker.wait(now), 1.0), restore
        return outcome, None, restore

    async def record(
        self,
        notice: ClaimedNotice,
        outcome: Outcome,
        retry_after: float | None = None,
        *,
        from_smtp: bool = True,
        restore: list[UUID] | None = None,
    ) -> None:
        """Store the outcome. `from_smtp=False`: the reason is ours (an expiry, a fetch, a
        template), and the last SMTP reply on file stays for the dead-letter view. A send
        that happened is recorded while the lease holds, however the database answers."""
        now = self.clock()
        # A relay's reply may carry a NUL, which PostgreSQL refuses in text: a 'sent'
        # record that can never be written would send the email again at every lease.
        reply = outcome.reply.replace("\x00", "")
        verdict, error, due_at = self._decided(notice, outcome.verdict, reply, retry_after, now)
        self.metrics.deliveries.labels(verdict.value).inc()
        # The relay refused it for good; else notifyd gave up (its lifetime passed, or a
        # reason of ours): the cause a dead letter's counter and its callback both name.
        refused = from_smtp and outcome.verdict is Verdict.FAILED
        if verdict is Verdict.FAILED:
            self.metrics.dead_lettered.labels("refused" if refused else "gave_up").inc()
        if verdict is Verdict.SENT:
            self.metrics.delivery_latency.observe(
                max((now - notice.created_at).total_seconds(), 0.0)
            )
        # The send already happened: keep trying to record it while the lease holds, so a
        # short database outage does not turn into a duplicate.
        deadline = self.monotonic() + self.mailing.delivery.lease_seconds / 2
        delay = 0.1
        while True:
            try:
                await self._write(
                    notice,
                    verdict,
                    outcome.bounce,
                    error,
                    reply if from_smtp else None,
                    due_at,
                    restore,
                    "failed" if refused else "dead_lettered",
                )
                if verdict is not Verdict.RETRY and self.mailing.callback_sources:
                    self.on_told()
                return
            except Exception as fault:  # not `error`: the except clause would unbind it
                if verdict is not Verdict.SENT and not isinstance(fault, _TRANSIENT):
                    raise  # the worker records a retry in its place
                # A deadlock or serialization failure is PostgreSQL asking for another try;
                # giving up would leave a sent notice to be sent again when its lease ends.
                # So would any other fault of the 'sent' record, one statement that either
                # committed or changed nothing.
                if not isinstance(fault, _TRANSIENT):
                    log.warning(
                        "recording a sent notice failed; trying again",
                        notice_id=str(notice.id),
                        error=type(fault).__name__,
                    )
                if self.monotonic() + delay > deadline:
                    log.error("could not record a delivery outcome", notice_id=str(notice.id))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _decided(
        self,
        notice: ClaimedNotice,
        verdict: Verdict,
        reply: str,
        retry_after: float | None,
        now: datetime,
    ) -> tuple[Verdict, str, datetime]:
        """The verdict to record, its reason and the notice's next due time: a retry past
        the category's lifetime fails; else it is due after `retry_after` or the back-off."""
        if verdict is not Verdict.RETRY:
            return verdict, reply, now
        delivery = self.mailing.delivery
        age = (now - notice.lifetime_from).total_seconds()
        if age >= delivery.lifetime(notice.category):
            reason = f"expired: gave up after {age / 3600:.1f} h ({notice.category} lifetime)"
            return Verdict.FAILED, f"{reason}: {reply}", now
        delay = retry_after or retry_delay(notice.attempts, delivery)
        return verdict, reply, now + timedelta(seconds=delay)

    async def _write(
        self,
        notice: ClaimedNotice,
        verdict: Verdict,
        bounce: bool,
        error: str,
        reply: str | None,
        due_at: datetime,
        restore: list[UUID] | None,
        failure: str,
    ) -> None:
        """One try at the statements of an outcome; `failure` names a failed one in its
        callback (notice.failed or notice.dead_lettered), if its source has one."""
        if (
            verdict is not Verdict.RETRY
            and notice.kind in KINDS_WITH_FILES
            and notice.event_id is not None
        ):
            # The file's bytes now only wait out the retention period.
            async with self.pool.acquire() as conn:
                await attachment_store.schedule_purge(
                    conn, notice.event_id, self.mailing.keep_files_days
                )
        if verdict is Verdict.SENT:
            # In one statement with the other sends that end in this loop turn.
            await self._sent.record(notice.id, error)
            return
        async with self.pool.acquire() as conn:
            if verdict is Verdict.RETRY:
                await notice_store.mark_retry(conn, notice.id, self.token, due_at, error, reply)
            else:
                told = (self.mailing.callback_sources, f"notice.{failure}")
                # A refusal the breaker may still withdraw (should the relay prove to refuse
                # everything) is told only after its cooldown, or once a delivery ends the
                # streak: the source is never told of a failure that is taken back.
                breaker = self.breaker_of(notice)
                hold = breaker.cooldown if breaker.may_withdraw(notice.id) else 0.0
                await notice_store.mark_failed(
                    conn, notice.id, self.token, error, reply, told, hold
                )
                if bounce:
                    await hard_bounce(
                        conn,
                        notice,
                        error,
                        bounce_limit=self.mailing.delivery.bounce_limit,
                        message_domain=self.mailing.message_domain,
                    )
                if notice.id in self.held and notice.id not in (restore or ()):
                    # The breaker opened while this failure was being written: the opener's
                    # restore may have run before it was; this one is committed now, so put
                    # it back here (idempotent).
                    restore = [*(restore or ()), notice.id]
            if restore:
                again = await notice_store.restore_refused(conn, restore, due_at)
                bounce_limit = self.mailing.delivery.bounce_limit
                await address_store.forgive_bounces(conn, again, bounce_limit)
