-- name: lock_states
-- The states of a wave's accounts, created on their first balance, locked and read in one
-- round trip: the no-op update of an existing row takes its lock and returns it.
INSERT INTO credit_states AS s (account_id, currency, level, balance, as_of)
SELECT account_id, currency, 'ok', NULL, NULL
FROM unnest($1::text[], $2::text[]) AS t (account_id, currency)
ORDER BY account_id, currency
ON CONFLICT (account_id, currency) DO UPDATE SET level = s.level
RETURNING account_id, currency, level, as_of

-- name: save_states
-- The new levels, and each balance into the spending history, for a whole wave.
WITH t AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[],
                         $5::timestamptz[]) AS t (account_id, currency, level, balance, as_of)
), saved AS (
    UPDATE credit_states AS s SET level = t.level, balance = t.balance, as_of = t.as_of
    FROM t WHERE s.account_id = t.account_id AND s.currency = t.currency
)
INSERT INTO balance_history (account_id, currency, balance, at)
SELECT account_id, currency, balance, as_of FROM t

-- name: recent_balances
SELECT at, balance FROM balance_history
WHERE account_id = $1 AND currency = $2 AND at >= $3 ORDER BY at

-- name: purge_history
-- Only the spending-rate window is needed.
DELETE FROM balance_history WHERE at < $1
