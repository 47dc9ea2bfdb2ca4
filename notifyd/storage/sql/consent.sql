-- name: record_consent
INSERT INTO consent_events (account_id, purpose, granted, source, wording_version, recorded_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, account_id, purpose, granted, source, wording_version, recorded_by, at

-- name: consent_history
SELECT id, account_id, purpose, granted, source, wording_version, recorded_by, at
FROM consent_events WHERE account_id = $1 ORDER BY at DESC, id DESC

-- name: current_consent
SELECT granted FROM consent_events
WHERE account_id = $1 AND purpose = $2 ORDER BY at DESC, id DESC LIMIT 1

-- name: suppress
INSERT INTO suppressions (address, list, reason) VALUES (lower($1), $2, $3)
ON CONFLICT (address, list) DO NOTHING

-- name: lift_suppression
DELETE FROM suppressions WHERE address = lower($1) AND list = $2

-- name: is_suppressed
SELECT EXISTS (SELECT 1 FROM suppressions WHERE address = lower($1) AND list = $2)
