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

-- name: fan_out_groups
-- The next $2 accounts after the cursor (closed ones included: the span is found by the
-- primary key alone, an index range whatever the statistics say; filtered first, a table
-- just filled and not yet analyzed had the planner read all of it and sort it, up to 150 ms
-- a batch at 300,000). Its open accounts (for an offer, $3, only those whose latest consent
-- is a grant) as groups of accounts alike: language, zone, preferences as text (equal
-- text, equal route), each with one of its accounts to route. One row at least, with the
-- span's last account and size.
WITH span AS (
    SELECT account_id, email, language, timezone, preferences, closed_at
    FROM subscribers WHERE account_id > $1::text ORDER BY account_id LIMIT $2
), groups AS (
    SELECT s.language, s.timezone, s.preferences::text AS preferences,
           min(s.account_id) AS account_id, min(s.email) AS email
    FROM span AS s
    WHERE s.closed_at IS NULL
      AND (NOT $3::bool OR coalesce((SELECT ce.granted FROM consent_events AS ce
                                     WHERE ce.account_id = s.account_id
                                       AND ce.purpose = 'marketing'
                                     ORDER BY ce.at DESC, ce.id DESC LIMIT 1), false))
    GROUP BY s.language, s.timezone, s.preferences::text
)
SELECT t.last, t.spanned, g.*
FROM (SELECT max(account_id) AS last, count(*) AS spanned FROM span) AS t
LEFT JOIN groups AS g ON true

-- name: fan_out_batch
-- The span's accounts after $1 up to $2, the same audience as fan_out_groups: those of a
-- group routed alike ($6..$8, its plan in $9..$17; no plan: nothing to send) are queued by
-- PostgreSQL itself, each to its own address unless that address is undeliverable or, for
-- an offer, suppressed. Returns how many were new, and the accounts routing must see one by
-- one: an undeliverable address, or no routed group (its own addresses, or preferences
-- changed since the groups were read). The INSERT is insert_notices' for shared plans.
WITH batch AS (
    SELECT s.account_id, s.email, s.language, s.timezone, s.preferences::text AS preferences,
           g.kind, g.category, g.plan_language, g.plan_timezone, g.reasons, g.due_at,
           g.context, g.dedupe_key, g.digest, g.kind IS NULL AND g.preferences IS NULL AS alone,
           EXISTS (SELECT 1 FROM address_health AS h
                   WHERE h.address = lower(s.email) AND h.undeliverable_at IS NOT NULL)
               AS undeliverable
    FROM subscribers AS s
    LEFT JOIN unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                     $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::text[],
                     $17::text[])
         AS g (language, timezone, preferences, kind, category, plan_language, plan_timezone,
               reasons, due_at, context, dedupe_key, digest)
      ON g.language IS NOT DISTINCT FROM s.language
     AND g.timezone IS NOT DISTINCT FROM s.timezone
     AND g.preferences = s.preferences::text
    WHERE s.account_id > $1::text AND s.account_id <= $2::text AND s.closed_at IS NULL
      AND (NOT $3::bool OR coalesce((SELECT ce.granted FROM consent_events AS ce
                                     WHERE ce.account_id = s.account_id
                                       AND ce.purpose = 'marketing'
                                     ORDER BY ce.at DESC, ce.id DESC LIMIT 1), false))
), added AS (
    INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language,
                         timezone, reasons, due_at, message_id, context, dedupe_key, digest,
                         state)
    SELECT t.id, $4, t.account_id, t.kind, t.category, t.email, t.plan_language,
           t.plan_timezone, t.reasons::jsonb, t.due_at, '<' || t.id || '@' || $5::text || '>',
           t.context::jsonb, t.dedupe_key, t.digest,
           CASE WHEN t.digest IS NULL THEN 'queued' ELSE 'held' END
    FROM (SELECT gen_random_uuid() AS id, b.* FROM batch AS b
          WHERE b.kind IS NOT NULL AND NOT b.undeliverable
            AND NOT ($3::bool AND EXISTS (SELECT 1 FROM suppressions AS su
                                          WHERE su.list = 'marketing'
                                            AND su.address = lower(b.email)))) AS t
    ON CONFLICT (account_id, dedupe_key, recipient) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM added) AS added, b.account_id, b.email, b.language, b.timezone,
       b.preferences
FROM (SELECT 1) AS one
LEFT JOIN batch AS b ON b.alone OR (b.kind IS NOT NULL AND b.undeliverable)
ORDER BY b.account_id

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
    WHERE event_id = (SELECT event_id FROM cancelled)
      AND state IN ('queued', 'held', 'restricted')
    RETURNING 1
)
SELECT (SELECT count(*) FROM cancelled) AS cancelled, (SELECT count(*) FROM withdrawn) AS notices
