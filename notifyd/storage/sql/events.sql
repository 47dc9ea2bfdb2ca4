-- name: store_event
-- The webhook id and the event in one round trip; nothing when the id is already known.
WITH receipt AS (
    INSERT INTO webhook_receipts (source, webhook_id, event_id)
    VALUES ($2, $3, $1)
    ON CONFLICT (source, webhook_id) DO NOTHING
    RETURNING event_id
), stored AS (
    INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at, data)
    SELECT $1, $2, $3, $4, $5, $6, $7 FROM receipt
    RETURNING id
)
SELECT count(*) FROM stored

-- name: find_receipt
SELECT event_id FROM webhook_receipts WHERE source = $1 AND webhook_id = $2

-- name: purge_receipts
-- Forgets webhook ids older than the idempotency window.
DELETE FROM webhook_receipts WHERE received_at < now() - make_interval(days => $1)
