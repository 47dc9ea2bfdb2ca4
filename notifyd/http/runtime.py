"""What the HTTP handlers share: the current settings, the pool, metrics, the clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from aiohttp import web

from notifyd.http.bodies import BodiesInFlight
from notifyd.http.signatures import Verifier
from notifyd.intake.group_commit import GroupCommit
from notifyd.intake.ingest import Incoming, IntakeRules, Receipt, ingest_batch
from notifyd.links import Links
from notifyd.metrics import Metrics
from notifyd.settings import Settings
from notifyd.storage.notices import ClaimedNotice, ClaimTerms


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    # Where /readyz opens a new connection: a pooled one can answer while the server
    # refuses new ones (a smart shutdown), or fail in ways no pool error names.
    dsn: str
    metrics: Metrics
    clock: Callable[[], datetime] = _utcnow
    # Called after a commit that queued a notice due now: wakes this host's worker without
    # waiting for the NOTIFY round trip.
    on_queued: Callable[[], None] = lambda: None
    # Called when a broadcast is created: starts its fan-out without waiting for a poll.
    on_broadcast: Callable[[], None] = lambda: None
    # This host's worker: the terms on which a commit may claim the notices it queues due
    # now (None: it may not, now), and where those go once committed. A notice handed over
    # so is sent without a claim of its own: a round trip less between a webhook's commit
    # and its email, and a write less of its row.
    claim_terms: Callable[[], ClaimTerms | None] = lambda: None
    on_claimed: Callable[[Sequence[ClaimedNotice]], None] = lambda _notices: None
    verifiers: dict[str, Verifier] = field(default_factory=dict)
    links: Links | None = None
    # Derived from the settings once per (re)load, not once per webhook.
    intake_rules: IntakeRules = field(init=False)
    commits: GroupCommit[Incoming, Receipt] = field(init=False)
    bodies: BodiesInFlight = field(init=False)

    def __post_init__(self) -> None:
        self.bodies = BodiesInFlight(self.settings.webhooks.max_bytes_in_flight)
        self.apply(self.settings)
        # Lanes hold a connection each while they commit: leave some of the pool to delivery
        # and the admin API. A batch costs about as much as a single webhook (one statement
        # per step), so fewer, larger batches pay: 2 lanes (one commits while the other
        # fills) took 32 clients from 1,067 to 1,371 webhooks/s against 4 (bench/ingest.py).
        lanes = min(2, max(1, self.settings.database.pool_max // 2))
        self.commits = GroupCommit(
            self.pool,
            lanes,
            lambda conn, batch: ingest_batch(conn, batch, self.claim_terms()),
            self.metrics.ingest_batch.observe,
            lambda receipts: self.on_claimed([n for r in receipts for n in r.claimed]),
        )

    def apply(self, settings: Settings) -> None:
        """Switch to reloaded settings; requests already running finish with the old ones."""
        self.verifiers = {
            name: Verifier(source.secrets, settings.webhooks.timestamp_tolerance_seconds)
            for name, source in settings.sources.items()
        }
        self.bodies.limit = settings.webhooks.max_bytes_in_flight
        self.intake_rules = IntakeRules(
            defaults=settings.defaults,
            calls=settings.calls,
            thresholds=settings.thresholds,
            message_domain=settings.message_domain,
            hourly_cap=settings.delivery.hourly_cap,
        )
        self.settings = settings


RUNTIME = web.AppKey("runtime", Runtime)
