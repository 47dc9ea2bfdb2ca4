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

-- name: fan_out_batch
-- Queues the next batch of open accounts after the cursor and moves the cursor, in the
-- caller's transaction. The dedupe key makes a replayed batch add nothing.
WITH candidates AS (
    SELECT account_id, email, language, timezone, preferences
    FROM subscribers
    WHERE account_id > $2::text AND closed_at IS NULL
    ORDER BY account_id
    LIMIT $3
), target AS (
    -- Marketing ($10): only with consent on file, to an address not on the suppression list.
    SELECT gen_random_uuid() AS notice_id, c.account_id, c.language, c.timezone,
           coalesce(c.preferences -> 'addresses' ->> $11::text, c.email) AS email
    FROM candidates AS c
    WHERE NOT $10::bool OR (
        coalesce((SELECT ce.granted FROM consent_events AS ce
                  WHERE ce.account_id = c.account_id AND ce.purpose = 'marketing'
                  ORDER BY ce.at DESC, ce.id DESC LIMIT 1), false)
        AND NOT EXISTS (SELECT 1 FROM suppressions AS sp
                        WHERE sp.list = 'marketing'
                          AND sp.address = lower(coalesce(c.preferences -> 'addresses'
                                                          ->> $11::text, c.email)))
    )
), queued AS (
    INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language,
                         timezone, reasons, due_at, message_id, dedupe_key)
    SELECT t.notice_id, $4, t.account_id, $5, $11::text, t.email,
           coalesce(t.language, $6), coalesce(t.timezone, $7), $8::jsonb, now(),
           '<' || t.notice_id || '@' || $9::text || '>', 'broadcast:' || $1::uuid::text
    FROM target AS t
    ON CONFLICT (account_id, dedupe_key, recipient) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING 1
), counts AS (
    SELECT (SELECT count(*) FROM candidates) AS seen, (SELECT count(*) FROM queued) AS added,
           (SELECT max(account_id) FROM candidates) AS last
)
UPDATE broadcasts AS b
SET cursor = coalesce(c.last, b.cursor),
    queued = b.queued + c.added,
    state = CASE WHEN c.seen < $3 THEN 'done' ELSE 'running' END,
    finished_at = CASE WHEN c.seen < $3 THEN now() END
FROM counts AS c
WHERE b.id = $1::uuid
RETURNING b.state, b.queued, c.added

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
    WHERE event_id = (SELECT event_id FROM cancelled) AND state = 'queued'
    RETURNING 1
)
SELECT (SELECT count(*) FROM cancelled) AS cancelled, (SELECT count(*) FROM withdrawn) AS notices
