-- name: revoke_links
-- Preference links of the account made before $2 stop opening; NULL if no such account.
UPDATE subscribers SET links_revoked_at = date_trunc('milliseconds', $2::timestamptz)
WHERE account_id = $1
RETURNING links_revoked_at

-- name: links_revoked_at
-- Whether the account exists, and since when its older preference links are revoked.
SELECT true AS found, links_revoked_at FROM subscribers WHERE account_id = $1

-- name: recent_renewals
-- Fresh preference links queued for the account in the last $3 hours (notices_account_created).
SELECT count(*) FROM notices
WHERE account_id = $1 AND kind = $2 AND created_at > now() - make_interval(hours => $3)

-- name: any_sent
-- Whether emails (and so links) were ever sent from this database.
SELECT EXISTS (SELECT 1 FROM notices WHERE state = 'sent')
