-- name: recent_balances
SELECT at, balance FROM balance_history
WHERE account_id = $1 AND currency = $2 AND at >= $3 ORDER BY at

-- name: purge_history
-- Retention (storage/retention.py; $1 the batch size): only the spending-rate window is
-- needed, the balances before $2 go. The table has no key: rows are found by ctid (as an
-- array, which PostgreSQL reads as a TID scan; an IN list would read the whole table).
DELETE FROM balance_history WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM balance_history WHERE at < $2 LIMIT $1 FOR UPDATE SKIP LOCKED))
