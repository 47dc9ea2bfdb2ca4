-- name: insert_receipt
-- Remembers a webhook id; returns nothing when the same id was already stored.
INSERT INTO webhook_receipts (source, webhook_id, event_id)
VALUES ($1, $2, $3)
ON CONFLICT (source, webhook_id) DO NOTHING
RETURNING event_id

-- name: find_receipt
SELECT event_id FROM webhook_receipts WHERE source = $1 AND webhook_id = $2

-- name: insert_event
INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at, data)
VALUES ($1, $2, $3, $4, $5, $6, $7)

-- name: purge_receipts
-- Forgets webhook ids older than the idempotency window.
DELETE FROM webhook_receipts WHERE received_at < now() - make_interval(days => $1)
