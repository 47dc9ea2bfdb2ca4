-- name: store_events
-- The webhook ids and events of a wave in one round trip; an id already known stores
-- nothing (a repeat within the wave included). Returns the ids of the events stored.
WITH incoming AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::text[])
        AS t (id, source, webhook_id, type, account_id, occurred_at, data)
), receipt AS (
    INSERT INTO webhook_receipts (source, webhook_id, event_id)
    SELECT source, webhook_id, id FROM incoming
    ON CONFLICT (source, webhook_id) DO NOTHING
    RETURNING event_id
), stored AS (
    INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at, data)
    SELECT i.id, i.source, i.webhook_id, i.type, i.account_id, i.occurred_at, i.data::jsonb
    FROM incoming AS i JOIN receipt AS r ON r.event_id = i.id
    RETURNING id
)
SELECT id FROM stored

-- name: find_receipt
SELECT event_id FROM webhook_receipts WHERE source = $1 AND webhook_id = $2

-- name: purge_receipts
-- Forgets webhook ids older than the idempotency window.
DELETE FROM webhook_receipts WHERE received_at < now() - make_interval(days => $1)
