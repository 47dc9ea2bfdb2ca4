"""The intake as the daemon runs it: a verified, validated webhook in, its committed
`Receipt` out; a bounce or complaint report in, its `Decision` out (reports.py). Built by
the daemon and handed to the HTTP app, which only translates HTTP to `accept()` or
`report()` and back; webhooks arriving together share a transaction (`group_commit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg

from notifyd.catalogue.events import Event
from notifyd.intake.facts import Incoming, IntakeRules
from notifyd.intake.group_commit import GroupCommit
from notifyd.intake.ingest import Receipt, ingest_batch
from notifyd.intake.reports import Decision, Terms, apply
from notifyd.links import Links
from notifyd.mail.reports import Report
from notifyd.settings import Settings
from notifyd.storage.attachments import StoredFile
from notifyd.storage.notices import ClaimedNotice, ClaimTerms


class Intake:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        observe_batch: Callable[[int], None] = lambda _size: None,
        on_queued: Callable[[datetime], None] = lambda _due_at: None,
        claim_terms: Callable[[], ClaimTerms | None] = lambda: None,
        on_claimed: Callable[[Sequence[ClaimedNotice]], None] = lambda _notices: None,
        erasure_key: bytes = b"",
        links: Links | None = None,
    ) -> None:
        """`on_queued(due_at)` is told, after a commit that left notices to the worker, when
        the first of them is due: this host's worker wakes for it, without waiting for the
        NOTIFY round trip, if it would otherwise claim it late (not for notices deferred
        past its sleep: each such wake-up was an empty claim, issue 22). `claim_terms` are
        the terms on which a commit may claim the notices it queues due now (None: it may
        not, now), and `on_claimed` where those go once committed: a notice handed over so
        is sent without a claim of its own, a round trip less between a webhook's commit
        and its email. `erasure_key` keys the hashes of erased addresses
        (storage/erasure.py), read once at start as the admin API's."""
        self.pool = pool
        self.clock = clock
        self.erasure_key = erasure_key
        self.links = links
        self.settings = settings
        self.on_queued = on_queued
        self.claim_terms = claim_terms
        self.rules = _rules(settings, erasure_key)
        # Lanes hold a connection each while they commit: leave some of the pool to delivery
        # and the admin API. A batch costs about as much as a single webhook (one statement
        # per step), so fewer, larger batches pay: 2 lanes (one commits while the other
        # fills) took 32 clients from 1,067 to 1,371 webhooks/s against 4 (bench/ingest.py).
        lanes = min(2, max(1, settings.database.pool_max // 2))
        self.commits: GroupCommit[Incoming, Receipt] = GroupCommit(
            pool,
            lanes,
            lambda conn, batch: ingest_batch(conn, batch, self.claim_terms()),
            observe_batch,
            lambda receipts: on_claimed([n for r in receipts for n in r.claimed]),
        )

    def apply(self, settings: Settings) -> None:
        """Reloaded settings: webhooks already waiting for a commit keep the old rules."""
        self.rules = _rules(settings, self.erasure_key)
        self.settings = settings

    async def report(self, report: Report) -> Decision:
        """Act on a bounce or complaint report (reports.py); what was done."""
        assert self.links is not None, "the daemon gives the intake its link keys"
        terms = Terms(
            links=self.links,
            bounce_local_part=self.settings.smtp.bounce_local_part,
            bounce_limit=self.settings.delivery.bounce_limit,
            message_domain=self.settings.message_domain,
        )
        return await apply(self.pool, report, terms)

    async def accept(
        self, source: str, webhook_id: str, event: Event, files: Sequence[StoredFile]
    ) -> Receipt:
        """Commit the event and its notices (or find the webhook-id's earlier event) and
        wake the worker for the notices this host did not claim as it queued them. Raises
        what the database raises (`db.UNAVAILABLE`: nothing was committed)."""
        receipt = await self.commits.run(
            event.account_id,
            Incoming(source, webhook_id, event, self.rules, self.clock(), files),
        )
        first = first_unclaimed(receipt)
        if first is not None:
            self.on_queued(first)
        return receipt

    async def close(self) -> None:
        """Stop the lanes. A webhook still waiting for its commit fails as if the database
        were unavailable: its sender is told 503 and posts it again."""
        await self.commits.close()


def first_unclaimed(receipt: Receipt) -> datetime | None:
    """When the first notice the commit left to the workers is due (None: it left none).
    The claimed ones were due now, so they are the earliest: past them in order of due_at
    comes the first unclaimed one, or one due now when the claims did not take them all."""
    if receipt.routing is None:
        return None
    waiting = sorted(
        plan.due_at
        for plan in receipt.routing.notices
        if plan.digest is None and not plan.restricted  # a digest's job sends those
    )
    skipped = len(receipt.claimed)
    return waiting[skipped] if len(waiting) > skipped else None


def _rules(settings: Settings, erasure_key: bytes) -> IntakeRules:
    """The parts of the settings that decide what an event queues, taken once per (re)load,
    not once per webhook."""
    return IntakeRules(
        defaults=settings.defaults,
        calls=settings.calls,
        thresholds=settings.thresholds,
        message_domain=settings.message_domain,
        hourly_cap=settings.delivery.hourly_cap,
        erasure_key=erasure_key,
    )
