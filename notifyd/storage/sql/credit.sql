-- name: recent_balances
SELECT at, balance FROM balance_history
WHERE account_id = $1 AND currency = $2 AND at >= $3 ORDER BY at

-- name: purge_history
-- Only the spending-rate window is needed.
DELETE FROM balance_history WHERE at < $1
