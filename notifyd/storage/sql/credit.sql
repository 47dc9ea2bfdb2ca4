-- name: ensure_state
-- Creates the state row on the first update, so the next statement can lock it.
INSERT INTO credit_states (account_id, currency, level, balance, as_of)
VALUES ($1, $2, 'ok', NULL, NULL)
ON CONFLICT (account_id, currency) DO NOTHING

-- name: lock_state
SELECT level, balance, as_of FROM credit_states
WHERE account_id = $1 AND currency = $2 FOR UPDATE

-- name: save_state
UPDATE credit_states SET level = $3, balance = $4, as_of = $5
WHERE account_id = $1 AND currency = $2

-- name: record_balance
INSERT INTO balance_history (account_id, currency, balance, at) VALUES ($1, $2, $3, $4)

-- name: recent_balances
SELECT at, balance FROM balance_history
WHERE account_id = $1 AND currency = $2 AND at >= $3 ORDER BY at

-- name: purge_history
-- Only the spending-rate window is needed.
DELETE FROM balance_history WHERE at < $1
