-- name: record_bounce
-- One more hard bounce for the address; at the limit ($3) it becomes undeliverable.
-- $4: a report counted it (a DSN), not the relay's own reply.
INSERT INTO address_health AS h (address, hard_bounces, last_reply, last_bounce_at,
                                  undeliverable_at, last_report_at)
VALUES (lower($1), 1, $2, now(), CASE WHEN 1 >= $3 THEN now() END,
        CASE WHEN $4 THEN now() END)
ON CONFLICT (address) DO UPDATE
SET hard_bounces = h.hard_bounces + 1, last_reply = $2, last_bounce_at = now(),
    undeliverable_at = coalesce(h.undeliverable_at,
                                CASE WHEN h.hard_bounces + 1 >= $3 THEN now() END),
    last_report_at = CASE WHEN $4 THEN now() ELSE h.last_report_at END
RETURNING hard_bounces, undeliverable_at IS NOT NULL AS undeliverable

-- name: record_soft_bounce
-- A report that a message to the address ($2 its notice) is delayed or failed for now
-- ($3 the status, 4.x.x): counted only; the address stays deliverable. Once per notice and
-- status (soft_bounce_reports, migration 0018): the same report posted again counts
-- nothing and returns no row.
WITH first AS (
    INSERT INTO soft_bounce_reports (notice_id, status) VALUES ($2, $3)
    ON CONFLICT DO NOTHING
    RETURNING notice_id
)
INSERT INTO address_health AS h (address, soft_bounces, last_report_at)
SELECT lower($1), 1, now() FROM first
ON CONFLICT (address) DO UPDATE
SET soft_bounces = h.soft_bounces + 1, last_report_at = now()
RETURNING soft_bounces

-- name: forgive_bounces
-- The breaker decided the relay, not these addresses, refused: take the bounces back.
UPDATE address_health
SET hard_bounces = greatest(hard_bounces - 1, 0),
    undeliverable_at = CASE WHEN hard_bounces - 1 >= $2 THEN undeliverable_at END
WHERE address = ANY($1::text[])

-- name: undeliverable_among
SELECT address FROM address_health
WHERE address = ANY($1::text[]) AND undeliverable_at IS NOT NULL

-- name: list_undeliverable
SELECT address, hard_bounces, last_reply, last_bounce_at, undeliverable_at
FROM address_health WHERE undeliverable_at IS NOT NULL
ORDER BY undeliverable_at DESC LIMIT $1

-- name: clear
DELETE FROM address_health WHERE address = lower($1)

-- name: purge_bounces
-- Retention (storage/retention.py; $1 the batch size): bounce records whose last bounce,
-- hard or soft, was before $2. An address marked undeliverable that long ago is tried again.
DELETE FROM address_health WHERE address IN (
    SELECT address FROM address_health
    WHERE greatest(last_bounce_at, last_report_at) < $2
    LIMIT $1 FOR UPDATE SKIP LOCKED)
