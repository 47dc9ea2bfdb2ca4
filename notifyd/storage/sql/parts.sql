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
