-- Retention (SPEC §2): what the daily purge (storage/retention.py) needs to find what is past
-- its time without reading the tables whole, and a record of its runs.
--
-- On a large existing database these builds take a while and block writes to the table
-- meanwhile (migrations run in a transaction, so not CONCURRENTLY): see docs/privacy.md for
-- building them CONCURRENTLY by hand before the upgrade (then these are no-ops).

-- Notices done with, by category and age. Partial: a notice enters it once, when it is sent
-- (or fails, merges, is cancelled or digested), not at each claim and retry.
CREATE INDEX IF NOT EXISTS notices_retention ON notices (category, created_at)
    WHERE state IN ('sent', 'failed', 'merged', 'cancelled', 'digested');

-- Events by type and age: billing events (kept years) are not read by the purge of the
-- others (kept one year).
CREATE INDEX IF NOT EXISTS events_type_received ON events (type, received_at);

-- Events whose payload still has free text (events.sql strip_free_text, the same list as
-- catalogue/events.py FREE_TEXT_FIELDS): a row leaves the index once it is cleared.
CREATE INDEX IF NOT EXISTS events_free_text ON events (received_at)
    WHERE data ?| '{reason,changed_by,method,transcript,user_agent}'::text[];

CREATE INDEX IF NOT EXISTS subscribers_closed ON subscribers (closed_at)
    WHERE closed_at IS NOT NULL;

-- Hard-bounce records by age (delivery records).
CREATE INDEX IF NOT EXISTS address_health_last_bounce ON address_health (last_bounce_at);

-- The last run of each daily job, so that a run missed while every host was down is made
-- at the next start, and a run is made once a day whichever host makes it. `counts`: rows
-- purged per data class (numbers only).
CREATE TABLE job_runs (
    job         text PRIMARY KEY,
    ran_at      timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    counts      jsonb NOT NULL DEFAULT '{}'
);
