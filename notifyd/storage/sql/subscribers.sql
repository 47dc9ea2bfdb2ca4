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
RETURNING account_id, email, name, username, language, timezone, closed_at, voicemail_audio,
          low_credit_threshold, preferences, restricted_at

-- name: replace_subscriber
-- The admin API (PUT, and PATCH after applying its fields): the details exactly as given,
-- null clearing one. Closing and reopening belong to the billing system's events, so
-- closed_at stays.
INSERT INTO subscribers (account_id, email, name, username, language, timezone)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (account_id) DO UPDATE
SET email = excluded.email,
    name = excluded.name,
    username = excluded.username,
    language = excluded.language,
    timezone = excluded.timezone,
    updated_at = now()
RETURNING account_id, email, name, username, language, timezone, closed_at, voicemail_audio,
          low_credit_threshold, preferences, restricted_at

-- name: update_subscriber
-- account.updated and account.closed: the subscriber as the event leaves it.
UPDATE subscribers
SET email = $2, name = $3, language = $4, timezone = $5, closed_at = $6, updated_at = now()
WHERE account_id = $1
RETURNING account_id, email, name, username, language, timezone, closed_at, voicemail_audio,
          low_credit_threshold, preferences, restricted_at

-- name: lock_subscriber
-- Every event of one account is applied in turn: the row lock orders them.
SELECT account_id, email, name, username, language, timezone, closed_at, voicemail_audio,
       low_credit_threshold, preferences, restricted_at
FROM subscribers WHERE account_id = $1 FOR UPDATE

-- name: get_subscriber
SELECT account_id, email, name, username, language, timezone, closed_at, voicemail_audio,
       low_credit_threshold, preferences, restricted_at
FROM subscribers WHERE account_id = $1

-- name: save_preferences
-- The admin API's preference update, all fields at once (the caller merged the patch).
UPDATE subscribers
SET preferences = $2, voicemail_audio = $3, low_credit_threshold = $4, language = $5,
    timezone = $6, updated_at = now()
WHERE account_id = $1
RETURNING account_id, email, name, username, language, timezone, closed_at, voicemail_audio,
          low_credit_threshold, preferences, restricted_at

-- name: set_restriction
-- Restriction of processing set ($2 true: kept from when it was first set) or lifted; the
-- time it is set since, NULL when lifted; no row when there is no such subscriber.
UPDATE subscribers
SET restricted_at = CASE WHEN $2 THEN coalesce(restricted_at, now()) END, updated_at = now()
WHERE account_id = $1
RETURNING restricted_at

-- name: purge_closed_accounts
-- Retention (storage/retention.py; $1 the batch size): accounts closed before $2, with
-- their consent history, credit state and balances (their notices and events went in the
-- steps before; billing ones stay for their own retention). Suppressions are by address
-- and stay: an address that unsubscribed is never put back on marketing. An account that
-- still has notices of the categories $3 or events of the types $4 (rows the steps before
-- left for a later run, because another transaction held them, or a notice still waiting)
-- stays until they have gone: purge_closed_notices and purge_closed_events find them
-- through the subscriber row, so without it they would outlive the closed-account period.
WITH gone AS (
    SELECT s.account_id FROM subscribers AS s
    WHERE s.closed_at < $2
      AND NOT EXISTS (SELECT 1 FROM notices AS n
                      WHERE n.account_id = s.account_id AND n.category = ANY($3::text[]))
      AND NOT EXISTS (SELECT 1 FROM events AS e
                      WHERE e.account_id = s.account_id AND e.type = ANY($4::text[]))
    LIMIT $1 FOR UPDATE OF s SKIP LOCKED
), consent AS (
    DELETE FROM consent_events WHERE account_id IN (SELECT account_id FROM gone)
), credit AS (
    DELETE FROM credit_states WHERE account_id IN (SELECT account_id FROM gone)
), balances AS (
    DELETE FROM balance_history WHERE account_id IN (SELECT account_id FROM gone)
)
DELETE FROM subscribers WHERE account_id IN (SELECT account_id FROM gone)
