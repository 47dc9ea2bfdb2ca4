-- Delivery callbacks (table `callbacks`, migration 0017): the rows notices.sql writes with
-- an outcome, claimed and posted by delivery/callbacks.py.

-- name: claim_due
-- Up to $1 callbacks due, for this host ($2 its claim token), each under a lease of $3
-- seconds (a 'sending' row whose lease ended is due again: a host that died).
WITH due AS (
    SELECT id FROM callbacks
    WHERE state IN ('pending', 'sending') AND due_at <= now()
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE callbacks AS c
SET state = 'sending', claim_token = $2, due_at = now() + make_interval(secs => $3),
    attempts = c.attempts + 1
FROM due
WHERE c.id = due.id
RETURNING c.id, c.notice_id, c.event_id, c.source, c.source_webhook_id, c.event_type,
          c.type, c.category, c.notice_state, c.smtp_code, c.occurred_at, c.attempts,
          c.last_error

-- name: next_due
-- When the earliest callback still to post is due (a lease's end for one being posted).
SELECT min(due_at) FROM callbacks WHERE state IN ('pending', 'sending')

-- name: mark_delivered
UPDATE callbacks
SET state = 'delivered', done_at = now(), claim_token = NULL, last_error = $3
WHERE id = $1 AND claim_token = $2

-- name: mark_retry
UPDATE callbacks
SET state = 'pending', due_at = $3, claim_token = NULL, last_error = $4
WHERE id = $1 AND claim_token = $2

-- name: mark_abandoned
UPDATE callbacks
SET state = 'abandoned', done_at = now(), claim_token = NULL, last_error = $3
WHERE id = $1 AND claim_token = $2

-- name: confirm_failures
-- A delivery closed the circuit breaker's streak: the notice.failed callbacks of its
-- refusals ($1 their notices), held in case the breaker withdrew them, are due now.
UPDATE callbacks SET due_at = now()
WHERE notice_id = ANY($1::uuid[]) AND state = 'pending' AND due_at > now()
  AND type = 'notice.failed'

-- name: release_claims
-- A clean stop: this host's claims are due again at once, for another host or the next start.
UPDATE callbacks SET state = 'pending', due_at = now(), claim_token = NULL
WHERE claim_token = $1 AND state = 'sending'

-- name: purge_callbacks
-- Retention (storage/retention.py; $1 the batch size): callbacks posted or given up before
-- $2. A row also goes with its notice (ON DELETE CASCADE).
DELETE FROM callbacks WHERE id IN (
    SELECT id FROM callbacks
    WHERE state IN ('delivered', 'abandoned') AND occurred_at < $2
    LIMIT $1 FOR UPDATE SKIP LOCKED)
