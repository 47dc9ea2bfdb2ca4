-- name: find_receipt
SELECT event_id FROM webhook_receipts WHERE source = $1 AND webhook_id = $2

-- name: purge_receipts
-- Forgets webhook ids older than the idempotency window.
DELETE FROM webhook_receipts WHERE received_at < now() - make_interval(days => $1)
