-- name: upsert_subscriber
-- account.created: a repeat with new details (a re-provisioned account) updates them.
INSERT INTO subscribers (account_id, email, name, username, language, timezone)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (account_id) DO UPDATE
SET email = excluded.email,
    name = coalesce(excluded.name, subscribers.name),
    username = coalesce(excluded.username, subscribers.username),
    language = coalesce(excluded.language, subscribers.language),
    timezone = coalesce(excluded.timezone, subscribers.timezone),
    closed_at = NULL,
    updated_at = now()
RETURNING account_id, email, name, username, language, timezone, closed_at

-- name: get_subscriber
SELECT account_id, email, name, username, language, timezone, closed_at
FROM subscribers WHERE account_id = $1
