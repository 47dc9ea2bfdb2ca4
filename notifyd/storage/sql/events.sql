-- name: find_receipt
SELECT event_id FROM webhook_receipts WHERE source = $1 AND webhook_id = $2

-- name: purge_receipts
-- Retention (storage/retention.py; its queries take the batch size $1, then their own):
-- webhook ids received before $2, the end of the idempotency window.
DELETE FROM webhook_receipts WHERE (source, webhook_id) IN (
    SELECT source, webhook_id FROM webhook_receipts WHERE received_at < $2
    LIMIT $1 FOR UPDATE SKIP LOCKED)

-- name: event_decision
-- One event as the admin looks it up: what it was, and why it queued nothing if it did not
-- (decision; NULL when it queued notices or was routed by a host older than 0009).
SELECT id AS event_id, source, type, account_id, occurred_at, received_at, decision,
       (SELECT count(*) FROM notices WHERE event_id = $1) AS notices
FROM events WHERE id = $1

-- name: events_of_account
-- An account's recent events, newest first, each with its decision and how many notices it
-- queued; an account that is no subscriber has them too (unknown account). $3 (optional):
-- only those received before it (the next page), and with $5 (the previous page's last
-- event) those received at $3 after $5 in the order: a wave stores its events with one
-- received_at, and a page may end among them. $4: only those that queued nothing.
SELECT e.id AS event_id, e.source, e.type, e.account_id, e.occurred_at, e.received_at,
       e.decision, (SELECT count(*) FROM notices AS n WHERE n.event_id = e.id) AS notices
FROM events AS e
WHERE e.account_id = $1
  AND ($3::timestamptz IS NULL OR e.received_at < $3
       OR (e.received_at = $3 AND e.id < $5::uuid))
  AND (NOT $4 OR e.decision IS NOT NULL)
ORDER BY e.received_at DESC, e.id DESC
LIMIT $2

-- name: strip_free_text
-- Retention: the free text of payloads (catalogue/events.py FREE_TEXT_FIELDS; the list is
-- migration 0013's index events_free_text, written the same so that it is used) goes from
-- events received before $2 whose notices were all done with before $2: none waiting,
-- none in a digest still waiting, none sent or failed since. The rest of the payload stays
-- as long as the event.
UPDATE events SET data = data - '{reason,changed_by,method,transcript,user_agent}'::text[]
WHERE id IN (
    SELECT e.id FROM events AS e
    WHERE e.data ?| '{reason,changed_by,method,transcript,user_agent}'::text[]
      AND e.received_at < $2
      AND NOT EXISTS (
          SELECT 1 FROM notices AS n LEFT JOIN notices AS d ON d.id = n.digest_id
          WHERE n.event_id = e.id
            AND (n.state IN ('queued', 'sending', 'held')
                 OR d.state IN ('queued', 'sending', 'held')
                 OR coalesce(n.sent_at, n.failed_at, d.sent_at, d.failed_at, n.created_at)
                    >= $2))
    LIMIT $1 FOR UPDATE OF e SKIP LOCKED)

-- name: purge_events
-- Retention: events of the types $3 received before $2 that have no notice left (their
-- notices' own retention comes first; an event's attachments go with it). Broadcasts'
-- events are of no catalogue type: kept with their broadcast.
DELETE FROM events WHERE id IN (
    SELECT e.id FROM events AS e
    WHERE e.type = ANY($3::text[]) AND e.received_at < $2
      AND NOT EXISTS (SELECT 1 FROM notices AS n WHERE n.event_id = e.id)
    LIMIT $1 FOR UPDATE OF e SKIP LOCKED)

-- name: purge_closed_events
-- Retention: as purge_events, whatever their age, the events of the types $3 of accounts
-- closed before $2.
DELETE FROM events WHERE id IN (
    SELECT e.id FROM subscribers AS s JOIN events AS e ON e.account_id = s.account_id
    WHERE s.closed_at < $2 AND e.type = ANY($3::text[])
      AND NOT EXISTS (SELECT 1 FROM notices AS n WHERE n.event_id = e.id)
    LIMIT $1 FOR UPDATE OF e SKIP LOCKED)
