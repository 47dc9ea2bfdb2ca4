-- name: insert_event
INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at, data)
VALUES ($1, 'admin', 'broadcast:' || $2, $3, '*', now(), $4)

-- name: insert_broadcast
INSERT INTO broadcasts (id, kind, event_id, starts_at, created_by)
VALUES ($1, $2, $3, $4, $5)

-- name: next_runnable
-- One host works on a broadcast at a time; the lock lasts one batch.
SELECT id, kind, event_id, cursor FROM broadcasts
WHERE state IN ('scheduled', 'running') AND starts_at <= now()
ORDER BY starts_at
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: fan_out_candidates
-- The next batch of open accounts after the cursor. For an offer ($3) only those whose
-- latest consent is a grant; routing picks the addresses and the time.
-- Preferences as text: equal text, equal route (decoded once per distinct value).
SELECT s.account_id, s.email, s.language, s.timezone, s.preferences::text AS preferences
FROM subscribers AS s
WHERE s.account_id > $1::text AND s.closed_at IS NULL
  AND (NOT $3::bool OR coalesce((SELECT ce.granted FROM consent_events AS ce
                                 WHERE ce.account_id = s.account_id
                                   AND ce.purpose = 'marketing'
                                 ORDER BY ce.at DESC, ce.id DESC LIMIT 1), false))
ORDER BY s.account_id
LIMIT $2

-- name: suppressed_among
SELECT address FROM suppressions WHERE list = 'marketing' AND address = ANY($1::text[])

-- name: advance
-- Moves the cursor past the batch just queued; a short batch was the last one.
UPDATE broadcasts AS b
SET cursor = coalesce($2, b.cursor),
    queued = b.queued + $3,
    state = CASE WHEN $4::bool THEN 'done' ELSE 'running' END,
    finished_at = CASE WHEN $4::bool THEN now() END
WHERE b.id = $1
RETURNING b.state, b.queued

-- name: get_broadcast
SELECT b.id, b.kind, b.state, b.starts_at, b.queued, b.created_by, b.created_at,
       b.finished_at, e.data,
       (SELECT count(*) FROM notices AS n WHERE n.event_id = b.event_id AND n.state = 'sent')
           AS sent
FROM broadcasts AS b JOIN events AS e ON e.id = b.event_id
WHERE b.id = $1

-- name: cancel_broadcast
WITH cancelled AS (
    UPDATE broadcasts SET state = 'cancelled', finished_at = now()
    WHERE id = $1 AND state IN ('scheduled', 'running')
    RETURNING event_id
), withdrawn AS (
    UPDATE notices SET state = 'cancelled', last_error = 'broadcast cancelled'
    WHERE event_id = (SELECT event_id FROM cancelled) AND state IN ('queued', 'held')
    RETURNING 1
)
SELECT (SELECT count(*) FROM cancelled) AS cancelled, (SELECT count(*) FROM withdrawn) AS notices
