-- The erasure of one account ($1), notifyd/storage/erasure.py. Each batch statement takes
-- the account and the batch size ($2) (those about notices also billing retention, $3, an
-- interval before now), changes at most $2 rows, and changes nothing when run again once
-- done: the erasure resumes after a crash by running every step again.

-- name: begin_erasure
-- Returns when the erasure was first asked for, and when one finished before (if it did).
INSERT INTO erasures (account_id, requested_by) VALUES ($1, $2)
ON CONFLICT (account_id) DO UPDATE SET account_id = excluded.account_id
RETURNING requested_at, finished_at

-- name: account_addresses
{{account_addresses}}

-- name: remember_hashes
INSERT INTO erased_addresses (address_hash, list)
SELECT hash, 'marketing' FROM unnest($1::bytea[]) AS hash
ON CONFLICT (address_hash, list) DO NOTHING

-- name: forget_addresses
-- The suppressions and bounces of the account's addresses ($2), but those of an address
-- another subscriber still has: those rows serve that subscriber too.
WITH gone AS (
    SELECT address FROM unnest($2::text[]) AS address
    WHERE NOT EXISTS (SELECT 1 FROM subscribers AS s
                      WHERE s.account_id <> $1 AND lower(s.email) = address)
), suppressed AS (
    DELETE FROM suppressions WHERE address IN (SELECT address FROM gone) RETURNING 1
), bounced AS (
    DELETE FROM address_health WHERE address IN (SELECT address FROM gone) RETURNING 1
)
SELECT (SELECT count(*) FROM suppressed) + (SELECT count(*) FROM bounced)

-- name: close_account
-- Closed, no broadcast fans out to it while its rows are being deleted.
UPDATE subscribers SET closed_at = coalesce(closed_at, now()) WHERE account_id = $1

-- name: cancel_pending
-- Nothing more is sent: what waits (queued, held for a digest or quiet hours) is cancelled.
UPDATE notices SET state = 'cancelled', last_error = 'the subscriber''s data was erased'
WHERE id IN (SELECT id FROM notices
             WHERE account_id = $1 AND state IN ('queued', 'held')
             LIMIT $2)

-- name: delete_callbacks
-- What the account's notices became, told to their sources (issue 19): nothing accounting
-- needs, so also those of the billing notices kept.
DELETE FROM callbacks
WHERE id IN (SELECT id FROM callbacks WHERE account_id = $1 LIMIT $2)

-- name: delete_soft_bounce_reports
-- The soft bounces reported of the account's notices (migration 0018): nothing accounting
-- needs, so also those of the billing notices kept.
DELETE FROM soft_bounce_reports
WHERE (notice_id, status) IN (
    SELECT s.notice_id, s.status FROM soft_bounce_reports AS s
    JOIN notices AS n ON n.id = s.notice_id
    WHERE n.account_id = $1 LIMIT $2)

-- name: strip_billing_notices
-- Billing notices within billing retention stay for accounting, with what accounting
-- needs only: kind, category, state, times, Message-ID, and the event's accounting fields
-- ($4) as the context. The address ('' marks a stripped row), reasons, replies, dedupe key,
-- claim and event go. One being sent is cancelled: its claim is gone, no host retries it.
UPDATE notices AS n
SET recipient = '',
    context = coalesce((SELECT jsonb_object_agg(field.key, field.value)
                        FROM events AS e, jsonb_each(e.data) AS field
                        WHERE e.id = n.event_id AND field.key = ANY($4::text[])),
                       '{}'::jsonb)
              || jsonb_build_object('event_type',
                                    (SELECT e.type FROM events AS e WHERE e.id = n.event_id)),
    reasons = '[]', last_error = NULL, smtp_reply = NULL, dedupe_key = NULL,
    claimed_by = NULL, claim_token = NULL, claimed_due_at = NULL, event_id = NULL,
    state = CASE WHEN n.state IN ('queued', 'held', 'sending') THEN 'cancelled' ELSE n.state END
WHERE n.id IN (SELECT id FROM notices
               WHERE account_id = $1 AND category = 'billing'
                 AND created_at >= now() - $3::interval AND recipient <> ''
               LIMIT $2)

-- name: delete_notices
DELETE FROM notices
WHERE id IN (SELECT id FROM notices
             WHERE account_id = $1
               AND NOT (category = 'billing' AND created_at >= now() - $3::interval)
             LIMIT $2)

-- name: delete_events
-- Their attachments (metadata and bytes) go with them (ON DELETE CASCADE). Their webhook
-- receipts stay (source, webhook id, time; nothing personal) so that a retried webhook is
-- still a duplicate and does not bring the event back.
DELETE FROM events
WHERE id IN (SELECT id FROM events
             WHERE account_id = $1 LIMIT $2)

-- name: delete_consent
DELETE FROM consent_events
WHERE id IN (SELECT id FROM consent_events
             WHERE account_id = $1 LIMIT $2)

-- name: delete_balances
DELETE FROM balance_history
WHERE ctid IN (SELECT ctid FROM balance_history
               WHERE account_id = $1 LIMIT $2)

-- name: delete_credit_states
DELETE FROM credit_states
WHERE ctid IN (SELECT ctid FROM credit_states
               WHERE account_id = $1 LIMIT $2)

-- name: delete_statements
DELETE FROM credit_statements
WHERE ctid IN (SELECT ctid FROM credit_statements
               WHERE account_id = $1 LIMIT $2)

-- name: finish_erasure
-- The subscriber goes last: until then a crashed erasure finds the account's addresses.
WITH gone AS (DELETE FROM subscribers WHERE account_id = $1)
UPDATE erasures
SET finished_at = coalesce(finished_at, now()),
    kept_notices = (SELECT count(*) FROM notices WHERE account_id = $1)
WHERE account_id = $1
RETURNING finished_at, kept_notices

-- name: resuppress
-- Addresses given again (storage/subscribers.py: a webhook, an import, the admin API, the
-- preference page) that were erased before go back on the lists they were kept off: $1 the
-- addresses (lower case), $2 their hashes, in step. The (address, list) pairs put back.
INSERT INTO suppressions (address, list, reason)
SELECT given.address, e.list, 'erased before, given again'
FROM unnest($1::text[], $2::bytea[]) AS given (address, hash)
JOIN erased_addresses AS e ON e.address_hash = given.hash
WHERE e.address_hash = ANY($2::bytea[])  -- by key in a wave's generic plan (waves.py)
ON CONFLICT (address, list) DO NOTHING
RETURNING address, list

-- name: purge_erasures
-- Retention (storage/retention.py; $1 the batch size): the records of erasures finished
-- before $2 ([audit] keep_days), which go with the audit trail that tells the same. One not
-- finished stays whatever its age: it is what a resumed erasure starts from. The hashes in
-- erased_addresses stay: they keep the addresses off marketing.
DELETE FROM erasures WHERE account_id IN (
    SELECT account_id FROM erasures WHERE finished_at < $2
    LIMIT $1 FOR UPDATE SKIP LOCKED)
