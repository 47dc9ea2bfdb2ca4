-- name: find_receipt
SELECT event_id FROM webhook_receipts WHERE source = $1 AND webhook_id = $2

-- name: purge_receipts
-- Forgets webhook ids older than the idempotency window.
DELETE FROM webhook_receipts WHERE received_at < now() - make_interval(days => $1)

-- name: event_decision
-- One event as the admin looks it up: what it was, and why it queued nothing if it did not
-- (decision; NULL when it queued notices or was routed by a host older than 0009).
SELECT id AS event_id, source, type, account_id, occurred_at, received_at, decision,
       (SELECT count(*) FROM notices WHERE event_id = $1) AS notices
FROM events WHERE id = $1

-- name: events_of_account
-- An account's recent events, newest first, each with its decision and how many notices it
-- queued; an account that is no subscriber has them too (unknown account). $3 (optional):
-- only those received before it (the next page); $4: only those that queued nothing.
SELECT e.id AS event_id, e.source, e.type, e.account_id, e.occurred_at, e.received_at,
       e.decision, (SELECT count(*) FROM notices AS n WHERE n.event_id = e.id) AS notices
FROM events AS e
WHERE e.account_id = $1 AND ($3::timestamptz IS NULL OR e.received_at < $3)
  AND (NOT $4 OR e.decision IS NOT NULL)
ORDER BY e.received_at DESC, e.id
LIMIT $2
