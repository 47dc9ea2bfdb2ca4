-- name: record_audit
INSERT INTO audit (actor, action, account_id, detail) VALUES ($1, $2, $3, $4::jsonb)

-- name: audit_page
-- Newest first; $1: only this account's; $2: only this action; $3: only before this time
-- (the next page).
SELECT id, at, actor, action, account_id, detail
FROM audit
WHERE ($1::text IS NULL OR account_id = $1)
  AND ($2::text IS NULL OR action = $2)
  AND ($3::timestamptz IS NULL OR at < $3)
ORDER BY at DESC, id DESC
LIMIT $4

-- name: purge_audit
-- The retention job: at most $2 rows older than $1, oldest first; run again until it
-- deletes fewer than $2. The only DELETE of the audit trail.
DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < $1 ORDER BY at, id LIMIT $2)
