-- The monthly credit statements' running record (table credit_statements, migration 0019;
-- the rows are written by waves.sql queue as billing events are stored).

-- name: unsent
-- The rows of periods not yet told up to $1 (the latest period due somewhere now:
-- rules/statements.py last_due), with their subscriber, for the job to decide in each
-- subscriber's zone which are due (send_point). Between the first of a month and the
-- statements' day no row qualifies, so the job's minute looks cost an index probe.
SELECT c.account_id, c.period, c.currency, c.opening, c.closing, c.top_ups, c.top_up_sum,
       c.payments, c.payment_sum, c.low_crossings, c.critical_crossings, c.limit_events,
       s.email, s.name, s.username, s.language, s.timezone, s.closed_at, s.voicemail_audio,
       s.low_credit_threshold, s.preferences, s.restricted_at
FROM credit_statements AS c
JOIN subscribers AS s ON s.account_id = c.account_id
WHERE c.queued_at IS NULL
  AND c.period <= $1::date
ORDER BY c.account_id, c.period, c.currency

-- name: mark_told
-- A period's statement queued (or passed over: turned off, account closed) by this
-- transaction; no row comes back when another transaction already did it.
UPDATE credit_statements SET queued_at = $3
WHERE account_id = $1 AND period = $2 AND queued_at IS NULL
RETURNING currency

-- name: carry_forward
-- The next period opens where this one closed, also when nothing happens in it: a quiet
-- month still gets its statement. A row the next period's events already made stays.
INSERT INTO credit_statements (account_id, period, currency, opening, closing, closing_at)
SELECT account_id, $3::date, currency, coalesce(closing, opening), coalesce(closing, opening),
       closing_at
FROM credit_statements WHERE account_id = $1 AND period = $2
ON CONFLICT (account_id, period, currency) DO NOTHING

-- name: purge_statements
-- Retention (storage/retention.py; $1 the batch size): a period's row is of no use once
-- its statement went and the next period opened from it; the periods before $2 go.
DELETE FROM credit_statements WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM credit_statements WHERE period < $2::date LIMIT $1 FOR UPDATE SKIP LOCKED))
