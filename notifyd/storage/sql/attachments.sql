-- name: insert_attachment
INSERT INTO attachments (id, event_id, role, filename, declared_type, content_type, size_bytes,
                         content, source_url, state, fetch_hosts)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)

-- name: of_event
SELECT id, role, filename, declared_type, content_type, size_bytes, content, source_url, state,
       fetch_attempts, last_error, fetch_hosts
FROM attachments WHERE event_id = $1 ORDER BY created_at, id

-- name: mark_ready
UPDATE attachments
SET state = 'ready', filename = $2, content_type = $3, size_bytes = $4, content = $5,
    last_error = NULL
WHERE id = $1

-- name: mark_fetch_failed
-- `$3`: final (no more attempts); otherwise the fetch is retried with the notice.
UPDATE attachments
SET fetch_attempts = fetch_attempts + 1, last_error = $2,
    state = CASE WHEN $3 THEN 'failed' ELSE state END
WHERE id = $1
RETURNING fetch_attempts

-- name: schedule_purge
-- Once the notice is out, the bytes are kept only for the configured number of days.
UPDATE attachments SET purge_after = now() + make_interval(days => $2)
WHERE event_id = $1 AND purge_after IS NULL

-- name: purge_bytes
-- Retention (storage/retention.py; $1 the batch size): the bytes whose time ran out
-- before $2 go; the file names and sizes stay (the notice history refers to them).
UPDATE attachments SET content = NULL, state = 'purged'
WHERE id IN (
    SELECT id FROM attachments WHERE purge_after < $2 AND content IS NOT NULL
    LIMIT $1 FOR UPDATE SKIP LOCKED)
