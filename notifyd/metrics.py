"""Prometheus metrics, on a registry of the daemon's own (no global state between tests).

Every stage counts into it; http/health.py serves it at /metrics, reading the queue's gauges
from the database at scrape time. What each metric answers, and the alerts built on them
(contrib/prometheus/), are in docs/operations.md.
"""

from __future__ import annotations

import math
import platform
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

from notifyd import __version__


class Metrics:
    def __init__(self) -> None:
        # Long on purpose: one declaration per metric, nothing else; splitting would only
        # scatter them.
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "notifyd_webhooks",
            "Webhooks answered, by source, event type and HTTP status.",
            ["source", "type", "status"],
            registry=self.registry,
        )
        self.notices = Gauge(
            "notifyd_notices",
            "Notices waiting to be sent or being sent, by state (read at scrape time).",
            ["state"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "notifyd_deliveries",
            "Delivery attempts by outcome: sent, retry, failed.",
            ["outcome"],
            registry=self.registry,
        )
        self.ingest_batch = Histogram(
            "notifyd_ingest_batch_size",
            "Webhooks committed together by one shared COMMIT (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "notifyd_delivery_latency_seconds",
            "From the notice being queued (or due) to the SMTP server accepting it.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.smtp_errors = Counter(
            "notifyd_smtp_errors",
            "SMTP errors by kind: 4xx, 5xx, connection, timeout, auth.",
            ["kind"],
            registry=self.registry,
        )
        self.possible_duplicates = Counter(
            "notifyd_possible_duplicates",
            "Sends whose outcome is unknown (cut off after DATA); each may be a duplicate.",
            registry=self.registry,
        )

        self.delivery_paused = Gauge(
            "notifyd_delivery_paused",
            "1 while the circuit breaker holds delivery (the relay refuses everything).",
            registry=self.registry,
        )
        self.breaker_trips = Counter(
            "notifyd_breaker_trips",
            "Times the relay refused everything and delivery was paused.",
            registry=self.registry,
        )
        self.callbacks = Counter(
            "notifyd_callbacks",
            "Delivery callbacks posted to the sources, by outcome: delivered (2xx), retry "
            "(another answer or a fault; posted again later), abandoned (past max_age_hours, "
            "or the source's callback removed).",
            ["outcome"],
            registry=self.registry,
        )
        self.retention_purged = Counter(
            "notifyd_retention_purged",
            "Rows deleted or cleared by the daily retention run, by data class.",
            ["class"],
            registry=self.registry,
        )
        self.retention_last_run = Gauge(
            "notifyd_retention_last_run_timestamp_seconds",
            "When the retention run this daemon made last was due to start (Unix time).",
            registry=self.registry,
        )

        self._on_call()

    def _on_call(self) -> None:
        """What on-call asks first (issue 21, docs/operations.md): is it up, is it keeping
        up, is anything lost. The gauges read from the database are set by `scraped`."""
        Info(
            "notifyd_build",
            "The running notifyd: its version and Python's (always 1).",
            registry=self.registry,
        ).info({"version": __version__, "python": platform.python_version()})
        # CPU seconds, resident memory, open and maximum file descriptors, start time.
        ProcessCollector(registry=self.registry)
        self.webhook_latency = Histogram(
            "notifyd_webhook_latency_seconds",
            "From a webhook's request being handled to its answer, by source (any status).",
            ["source"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "notifyd_notices_dead_lettered",
            "Notices that failed for good at delivery, by cause: refused (the relay's "
            "permanent refusal) or gave_up (their lifetime passed, or a reason of notifyd's).",
            ["cause"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "notifyd_database_up",
            "1 if the scrape's query answered in time, else 0 (read at scrape time).",
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "notifyd_dead_letters",
            "Failed notices kept for the dead-letter view (read at scrape time; NaN when "
            "the database did not answer).",
            registry=self.registry,
        )
        self.oldest_due_age = Gauge(
            "notifyd_oldest_due_notice_age_seconds",
            "How long the oldest notice due now has waited past its due time; 0 when none "
            "waits (read at scrape time; NaN when the database did not answer).",
            registry=self.registry,
        )
        # Each answer's two labelled series, held: `labels()` takes a lock and checks its
        # values on every call (5.1 -> 2.5 us a webhook, docs/performance.md, "The intake's
        # floor"). Bounded: configured sources (or "-"), catalogue types (or "-"), statuses.
        self._answered: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def webhook_answered(self, source: str, event_type: str, status: int, started: float) -> None:
        """One webhook answered: counted by status, its latency from `started`
        (time.monotonic() when its handler began)."""
        key = (source, event_type, status)
        children = self._answered.get(key)
        if children is None:
            children = self._answered[key] = (
                self.webhooks.labels(source, event_type, str(status)),
                self.webhook_latency.labels(source),
            )
        children[0].inc()
        children[1].observe(max(time.monotonic() - started, 0.0))

    def scraped(self, queue: dict[str, float] | None) -> None:
        """The gauges read from the database at scrape time: `queue` (notices by state,
        `failed`, `oldest_due_seconds`), or None when the database did not answer in time,
        so that a stale value is not taken for a current one."""
        self.database_up.set(0 if queue is None else 1)
        unknown = math.nan
        for state in ("queued", "sending"):
            self.notices.labels(state).set(unknown if queue is None else queue[state])
        self.dead_letters.set(unknown if queue is None else queue["failed"])
        self.oldest_due_age.set(unknown if queue is None else queue["oldest_due_seconds"])

    def render(self) -> bytes:
        return generate_latest(self.registry)
