-- The export of everything held about one account ($1), one JSON document per row as
-- text: each row is the table's own columns (to_jsonb), so a column added to a table is
-- exported without a change here (and the schema test names it).

-- name: account_known
-- Whether anything is held about the account, or its erasure was asked for. '*' is no
-- account: broadcasts' events carry it (broadcasts.sql), and belong to every account.
SELECT $1 <> '*' AND (
       EXISTS (SELECT 1 FROM subscribers WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM erasures WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM events WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM notices WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM consent_events WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM credit_states WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM balance_history WHERE account_id = $1)
    OR EXISTS (SELECT 1 FROM credit_statements WHERE account_id = $1))

-- name: export_subscriber
SELECT to_jsonb(s)::text FROM subscribers AS s WHERE s.account_id = $1

-- name: export_erasure
SELECT to_jsonb(e)::text FROM erasures AS e WHERE e.account_id = $1

-- name: export_addresses
WITH addresses AS ({{account_addresses}})
SELECT jsonb_build_object(
           'address', a.address,
           'suppressions', coalesce((SELECT jsonb_agg(to_jsonb(p) ORDER BY p.list)
                                     FROM suppressions AS p WHERE p.address = a.address),
                                    '[]'::jsonb),
           'health', (SELECT to_jsonb(h) FROM address_health AS h WHERE h.address = a.address)
       )::text
FROM addresses AS a ORDER BY a.address

-- name: export_consent
SELECT to_jsonb(c)::text FROM consent_events AS c WHERE c.account_id = $1 ORDER BY c.at, c.id

-- name: export_credit_states
SELECT to_jsonb(c)::text FROM credit_states AS c WHERE c.account_id = $1 ORDER BY c.currency

-- name: export_balance_history
SELECT to_jsonb(b)::text FROM balance_history AS b WHERE b.account_id = $1
ORDER BY b.currency, b.at

-- name: export_credit_statements
SELECT to_jsonb(c)::text FROM credit_statements AS c WHERE c.account_id = $1
ORDER BY c.period, c.currency

-- name: export_events
SELECT to_jsonb(e)::text FROM events AS e WHERE e.account_id = $1 ORDER BY e.received_at, e.id

-- name: export_attachments
-- Metadata only: the bytes (voicemail audio, fax documents) are not in the export; whether
-- they are still held is `content_held`.
SELECT (to_jsonb(a) - 'content' || jsonb_build_object('content_held', a.content IS NOT NULL))::text
FROM attachments AS a JOIN events AS e ON e.id = a.event_id
WHERE e.account_id = $1 ORDER BY a.created_at, a.id

-- name: export_notices
SELECT to_jsonb(n)::text FROM notices AS n WHERE n.account_id = $1 ORDER BY n.created_at, n.id

-- name: export_callbacks
SELECT to_jsonb(c)::text FROM callbacks AS c WHERE c.account_id = $1
ORDER BY c.occurred_at, c.id

-- name: export_soft_bounce_reports
SELECT to_jsonb(s)::text FROM soft_bounce_reports AS s JOIN notices AS n ON n.id = s.notice_id
WHERE n.account_id = $1 ORDER BY s.reported_at, s.notice_id, s.status

-- name: export_audit
SELECT to_jsonb(a)::text FROM audit AS a WHERE a.account_id = $1 ORDER BY a.at, a.id
