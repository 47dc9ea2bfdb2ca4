"""What the HTTP handlers share: the current settings, the pool, metrics, the clock, and the
services the daemon built (the intake)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import InitVar, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from notifyd.http.bodies import BodiesInFlight
from notifyd.http.limits import ClientWindow
from notifyd.http.pages.views import Pages
from notifyd.http.signatures import Verifier
from notifyd.http.sns import Certificates
from notifyd.intake.service import Intake
from notifyd.links import Links
from notifyd.metrics import Metrics
from notifyd.settings import Settings


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
    # Webhooks go to it once verified and validated; built by the daemon.
    intake: Intake
    clock: Callable[[], datetime] = _utcnow
    # Called when an admin queues a notice again: wakes this host's worker.
    on_queued: Callable[[], None] = lambda: None
    # Called when a broadcast is created: starts its fan-out without waiting for a poll.
    on_broadcast: Callable[[], None] = lambda: None
    verifiers: dict[str, Verifier] = field(default_factory=dict)
    links: Links | None = None
    # Keys the hashes of erased addresses (storage/erasure.py): [privacy] erasure_key or
    # the state folder's, read once at start.
    erasure_key: bytes = b""
    # Asks for a fresh preference link per client address ([links]).
    renewal_asks: ClientWindow = field(default_factory=ClientWindow)
    # Amazon SNS's signing certificates, fetched once each (a source of kind "ses").
    sns_certificates: Certificates = field(default_factory=Certificates)
    bodies: BodiesInFlight = field(init=False)
    # Work a request starts and does not wait for (the email of a fresh link: its answer
    # must not take longer for an account that exists). Kept so that no task is lost, and
    # awaited by the daemon's stop, after the server's, before the pool closes.
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # The subscriber pages' templates: the daemon's, checked (http/pages/checks.py); built
    # unchecked from the settings where none is given (tests).
    checked_pages: InitVar[Pages | None] = None
    pages: Pages = field(init=False)

    def __post_init__(self, checked_pages: Pages | None) -> None:
        self.bodies = BodiesInFlight(self.settings.webhooks.max_bytes_in_flight)
        self.apply(self.settings, checked_pages)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self) -> None:
        """Wait for the work spawned (each task logs its own failure)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def apply(self, settings: Settings, pages: Pages | None = None) -> None:
        """Switch to reloaded settings; requests already running finish with the old ones."""
        self.pages = pages or Pages(settings)
        self.verifiers = {
            name: Verifier(source.secrets, settings.webhooks.timestamp_tolerance_seconds)
            for name, source in settings.sources.items()
        }
        self.bodies.limit = settings.webhooks.max_bytes_in_flight
        self.settings = settings


RUNTIME = web.AppKey("runtime", Runtime)
