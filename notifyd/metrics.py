"""Prometheus metrics, on a registry of the daemon's own (no global state between tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
