-- Parts of statements, not statements: a query writes {{name}} where one goes, and
-- queries.load() puts it there when the queries are loaded.

-- name: claimed_notice_columns
-- What a worker is handed when it claims a notice: the columns of ClaimedNotice
-- (notifyd/storage/notices.py), field for field and in its order, from the notice row `c`
-- being sent, its event `e` and its subscriber `s` (joined by claimed_notice_lookups).
-- notices.sql's claim_due and waves.sql's queue (the at-commit hand-over) both select
-- them; tests/integration/test_schema.py compares both with ClaimedNotice. Of a row not
-- being sent (the hand-over's notices left for the workers) only the id counts: its
-- context is not sent back.
c.id, c.event_id, c.account_id, c.kind, c.category, c.recipient, c.language, c.timezone,
c.attempts, c.created_at, coalesce(c.retried_at, c.created_at) AS lifetime_from,
c.message_id, CASE WHEN c.state = 'sending' THEN c.context END AS context,
coalesce(e.type, c.kind) AS event_type, coalesce(e.occurred_at, c.created_at) AS occurred_at,
coalesce(e.data, '{}'::jsonb) AS data, s.name AS subscriber_name,
s.username AS subscriber_username, s.voicemail_audio

-- name: claimed_notice_lookups
-- The event (none for a digest) and the subscriber of the notice row `c`, for
-- claimed_notice_columns: looked up by their keys, for a notice being sent only (the
-- state is checked before an index is read), LIMIT keeping the planner from turning the
-- lookups into joins (a hash of the whole subscribers table for every wave).
LEFT JOIN LATERAL (SELECT type, occurred_at, data FROM events
                   WHERE c.state = 'sending' AND id = c.event_id LIMIT 1) AS e ON true
LEFT JOIN LATERAL (SELECT name, username, voicemail_audio FROM subscribers
                   WHERE c.state = 'sending' AND account_id = c.account_id LIMIT 1) AS s
    ON true

-- name: withholding
-- Whether the notice row `t` (its account_id, category and recipient, and off_by_default:
-- whether the running config's [defaults.modes] turns its category off) may be sent now,
-- as its subscriber and address stand at this moment (issue 18: a change that lands while
-- a notice waits wins at the claim; so does a reload that turns a category off by default
-- for the subscribers who did not choose its mode): w.withheld is NULL when it may, else
-- the state it takes instead ('restricted': held while the account is restricted;
-- 'cancelled'), and w.why the reason the admin API shows. Mandatory categories (the
-- catalogue's MANDATORY_CATEGORIES, which test_schema compares with this list) are never
-- withheld: nothing is looked up for them. The lookups are by primary key or index, and a
-- notice outside marketing reads neither consent table. notices.sql's claim_due uses it;
-- a wave of webhooks (waves.sql's queue) has routing decide the same on its locked rows.
LEFT JOIN LATERAL (
    SELECT CASE x.code WHEN 'restricted' THEN 'restricted' ELSE 'cancelled' END AS withheld,
           CASE x.code
               WHEN 'restricted' THEN 'held: processing of the account is restricted'
               WHEN 'off' THEN 'cancelled: the subscriber turned ' || t.category
                               || ' notices off'
               WHEN 'off_by_default' THEN 'cancelled: ' || t.category
                               || ' notices are off by default ([defaults.modes])'
               WHEN 'suppressed' THEN 'cancelled: the address unsubscribed from marketing'
               WHEN 'no_consent' THEN 'cancelled: marketing consent is withdrawn'
               ELSE 'cancelled: the address is undeliverable (hard bounces)'
           END AS why
    FROM (
        SELECT CASE
            WHEN s.restricted_at IS NOT NULL THEN 'restricted'
            WHEN s.preferences -> 'modes' ->> t.category = 'off' THEN 'off'
            WHEN t.off_by_default AND s.preferences -> 'modes' ->> t.category IS NULL
                THEN 'off_by_default'
            WHEN t.category = 'marketing'
                 AND EXISTS (SELECT 1 FROM suppressions AS p
                             WHERE p.address = lower(t.recipient) AND p.list = 'marketing')
                THEN 'suppressed'
            WHEN t.category = 'marketing'
                 AND NOT coalesce((SELECT ce.granted FROM consent_events AS ce
                                   WHERE ce.account_id = t.account_id
                                     AND ce.purpose = 'marketing'
                                   ORDER BY ce.at DESC, ce.id DESC LIMIT 1), false)
                THEN 'no_consent'
            WHEN EXISTS (SELECT 1 FROM address_health AS h
                         WHERE h.address = lower(t.recipient)
                           AND h.undeliverable_at IS NOT NULL)
                THEN 'undeliverable'
        END AS code
        FROM subscribers AS s
        WHERE t.category NOT IN ('security', 'service') AND s.account_id = t.account_id
        LIMIT 1
    ) AS x
    WHERE x.code IS NOT NULL
) AS w ON true

-- name: account_addresses
-- Every address of the account $1, lower case: its own, those its preferences send
-- categories to and copy, and those its notices went to (a kept billing notice's is '').
-- The export lists them with their suppression and bounces; the erasure hashes them.
SELECT lower(s.email) AS address FROM subscribers AS s WHERE s.account_id = $1
UNION
SELECT lower(named.address)
FROM subscribers AS s,
     jsonb_each(coalesce(s.preferences -> 'addresses', '{}'::jsonb)) AS category,
     jsonb_array_elements_text(CASE jsonb_typeof(category.value)
                                   WHEN 'array' THEN category.value
                                   ELSE jsonb_build_array(category.value) END) AS named(address)
WHERE s.account_id = $1
UNION
SELECT lower(copied.address)
FROM subscribers AS s,
     jsonb_array_elements_text(coalesce(s.preferences -> 'extra_emails', '[]'::jsonb))
         AS copied(address)
WHERE s.account_id = $1
UNION
SELECT lower(recipient) FROM notices WHERE account_id = $1 AND recipient <> ''

-- name: purge_notice_batch
-- The rest of retention's DELETE of notices (notices.sql purge_notices and
-- purge_closed_notices) after their CTE `batch`, the ids it locked. Deleting a digest sets
-- the digest_id of the notices it told to NULL (migration 0006's foreign key), an UPDATE of
-- those rows: had another transaction one of them, the DELETE would wait for it (up to the
-- batch's lock_timeout) while holding every row of the batch, and whoever wanted one of
-- those would wait for both. So the told notices are locked first, without waiting, and a
-- digest one of whose told notices is held by someone else stays for a later batch; the
-- foreign key's UPDATE then finds every row it changes already locked by this one.
, told AS MATERIALIZED (
    SELECT id FROM notices WHERE digest_id IN (SELECT id FROM batch)
    FOR NO KEY UPDATE SKIP LOCKED
), busy AS (
    SELECT m.digest_id AS id FROM notices AS m LEFT JOIN told AS t ON t.id = m.id
    WHERE m.digest_id IN (SELECT id FROM batch) AND t.id IS NULL
)
DELETE FROM notices WHERE id IN (SELECT id FROM batch EXCEPT SELECT id FROM busy)
-- name: mark_sent
-- notices.sql mark_sent_many's record of the sends ($1, $2: notices and replies, in step;
-- $3 the claim token), as the CTE `sent` of both its forms; each adds its RETURNING.
UPDATE notices AS n
SET state = 'sent', sent_at = now(), smtp_reply = r.reply, last_error = NULL,
    claimed_by = NULL, claim_token = NULL,
    due_at = least(coalesce(n.claimed_due_at, n.due_at), now()), claimed_due_at = NULL
FROM unnest($1::uuid[], $2::text[]) AS r (id, reply)
WHERE n.id = r.id AND n.claim_token = $3
  AND set_config('synchronous_commit', 'off', true) = 'off'

-- name: healed
-- (A CTE after `sent`.) An address that accepts mail again loses its bounce record, but
-- one a relay's later report counted in (last_report_at): that relay accepts everything.
healed AS (
    DELETE FROM address_health
    WHERE address IN (SELECT lower(recipient) FROM sent) AND last_report_at IS NULL
)

-- name: mark_failed
-- notices.sql mark_failed ($1 notice, $2 claim token, $3 reason, $4 the SMTP reply or
-- null to keep the last one). As mark_sent_many, due_at gets back the time the notice was
-- due.
UPDATE notices AS n
SET state = 'failed', last_error = $3, smtp_reply = coalesce($4, n.smtp_reply),
    claimed_by = NULL, claim_token = NULL, failed_at = now(),
    due_at = least(coalesce(n.claimed_due_at, n.due_at), now()), claimed_due_at = NULL
WHERE n.id = $1 AND n.claim_token = $2

-- name: tell_callbacks
-- (A CTE after `wanted` (its sources: those with a callback) and `told` (id, event_id,
-- category, state, smtp_reply, type, hold of each notice whose outcome the statement
-- records; hold: seconds before the callback may be posted).)
-- One callback row for each told notice whose event came from a wanted source; a digest,
-- which has no event, tells each notice it gathered, under that notice's id. The event is
-- read by its primary key. storage/callbacks.py and delivery/callbacks.py send the rows.
tell AS (
    INSERT INTO callbacks (notice_id, event_id, account_id, source, source_webhook_id,
                           event_type, type, category, notice_state, smtp_code, due_at)
    SELECT coalesce(i.id, t.id), e.id, e.account_id, e.source, e.webhook_id, e.type,
           t.type, t.category, t.state,
           -- A relay's acceptance of the final dot is a 250, which the reply kept may
           -- not repeat (its text only).
           coalesce(substring(t.smtp_reply FROM '^[2-5][0-9][0-9]')::smallint,
                    CASE WHEN t.state = 'sent' THEN 250 END),
           now() + make_interval(secs => t.hold)
    FROM told AS t
    CROSS JOIN wanted AS w
    LEFT JOIN notices AS i ON t.event_id IS NULL AND i.digest_id = t.id
    JOIN events AS e ON e.id = coalesce(t.event_id, i.event_id)
    WHERE e.source = ANY(w.sources)
)
