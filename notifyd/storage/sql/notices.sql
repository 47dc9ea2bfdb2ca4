-- name: insert_notices
-- All notices of one event in one statement; a notice whose dedupe key the account already
-- has (another leg of the same call) is not inserted.
-- A notice for a digest is 'held' until its digest goes out at due_at.
INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language, timezone,
                     reasons, due_at, message_id, context, dedupe_key, digest, state)
SELECT id, event_id, account_id, kind, category, recipient, language, timezone,
       reasons::jsonb, due_at, message_id, context::jsonb, dedupe_key, digest,
       CASE WHEN digest IS NULL THEN 'queued' ELSE 'held' END
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[],
            $12::text[], $13::text[], $14::text[])
     AS t (id, event_id, account_id, kind, category, recipient, language, timezone,
           reasons, due_at, message_id, context, dedupe_key, digest)
ON CONFLICT (account_id, dedupe_key, recipient) WHERE dedupe_key IS NOT NULL DO NOTHING
RETURNING id

-- name: queued_missed_call
-- The missed-call notices of a call still waiting for its voicemail (one per address, or
-- held for a digest), locked so that no worker or digest takes them while the voicemail
-- takes them over.
SELECT n.id, e.data FROM notices AS n JOIN events AS e ON e.id = n.event_id
WHERE n.account_id = $1 AND n.dedupe_key = 'call:' || $2 AND n.kind = 'call.missed'
  AND n.state IN ('queued', 'held')
FOR UPDATE OF n

-- name: mark_merged
UPDATE notices SET state = 'merged', last_error = $2 WHERE id = ANY($1::uuid[])

-- name: cancel_waiting
-- A choice of the subscriber or the state of an address changed (issue 18): every notice
-- of the account $1 in the categories $2 not sent yet, whatever it waits for (queued:
-- quiet hours, a retry, a digest or follow-up gathered; held for a digest or a burst;
-- restricted), is cancelled in the caller's transaction, with the reason $4 ("{category}"
-- stands for the notice's). $3: only those to these addresses (lower case); NULL: all.
-- Being sent ('sending') is not waiting: claim_due checks again as it claims.
UPDATE notices
SET state = 'cancelled', last_error = replace($4, '{category}', category)
WHERE account_id = $1 AND state IN ('queued', 'held', 'restricted')
  AND category = ANY($2::text[])
  AND ($3::text[] IS NULL OR lower(recipient) = ANY($3::text[]))

-- name: follow_choices
-- The subscriber chose another language ($2) or time zone ($3; NULL: that one did not
-- change): their notices not sent yet are written in it, as the emails that follow the
-- choice must be. A notice being sent keeps what it is being sent in.
UPDATE notices
SET language = coalesce($2, language), timezone = coalesce($3, timezone)
WHERE account_id = $1 AND state IN ('queued', 'held', 'restricted')

-- name: readdress_waiting
-- The account $1's own address changed from $2 to $3: its notices not sent yet to the old
-- address go to the new one (what they wait for unchanged); one whose twin (the same
-- dedupe key) already goes to the new address is cancelled instead, as the unique index
-- would refuse the move. Those to other addresses (a category's own) stay.
WITH moved AS (
    UPDATE notices AS n SET recipient = $3
    WHERE n.account_id = $1 AND lower(n.recipient) = lower($2)
      AND n.state IN ('queued', 'held', 'restricted')
      AND NOT EXISTS (SELECT 1 FROM notices AS t
                      WHERE t.account_id = $1 AND t.dedupe_key = n.dedupe_key
                        AND lower(t.recipient) = lower($3))
    RETURNING n.id
)
UPDATE notices AS n
SET state = 'cancelled',
    last_error = 'cancelled: the account''s address changed; the new one has it'
WHERE n.account_id = $1 AND lower(n.recipient) = lower($2)
  AND n.state IN ('queued', 'held', 'restricted')
  AND n.id NOT IN (SELECT id FROM moved)

-- name: cancel_waiting_to
-- An address changed state (issue 18): it unsubscribed from marketing, or it is
-- undeliverable. The notices of the categories $2 to the addresses $1 (lower case), of
-- every account, not sent yet (the states of cancel_waiting) are cancelled in the caller's
-- transaction with the reason $3: those parts.sql's withholding would cancel as they come
-- due, cancelled at once. Found by migration 0015's index notices_waiting_recipient.
UPDATE notices
SET state = 'cancelled', last_error = $3
WHERE lower(recipient) = ANY($1::text[]) AND state IN ('queued', 'held', 'restricted')
  AND category = ANY($2::text[])

-- name: restrict_waiting
-- The account $1 is restricted: its notices waiting, but those of the mandatory categories
-- $2, are held (not sent, not cancelled) until it is lifted.
UPDATE notices
SET state = 'restricted', last_error = 'held: processing of the account is restricted'
WHERE account_id = $1 AND state IN ('queued', 'held') AND category <> ALL($2::text[])

-- name: release_restricted
-- The account $1's restriction is lifted: a held notice still within its delivery lifetime
-- ($2, $3: each category's in seconds, counted from its creation or an admin's retry) waits
-- again as before (for its digest, or due at once if its time has passed); one past it is
-- cancelled, saying so. (released, cancelled).
WITH held AS (
    SELECT id, category, digest,
           extract(epoch FROM now() - coalesce(retried_at, created_at)) AS age,
           coalesce(l.seconds, $4) AS lifetime
    FROM notices
    LEFT JOIN unnest($2::text[], $3::float8[]) AS l (category, seconds) USING (category)
    WHERE account_id = $1 AND state = 'restricted'
    FOR UPDATE OF notices
), changed AS (
    UPDATE notices AS n
    SET state = CASE WHEN h.age >= h.lifetime THEN 'cancelled'
                     WHEN h.digest IS NOT NULL THEN 'held' ELSE 'queued' END,
        last_error = CASE WHEN h.age >= h.lifetime THEN format(
            'cancelled: the restriction was lifted after the %s lifetime (%s h old)',
            h.category, round((h.age / 3600)::numeric, 1)) END
    FROM held AS h
    WHERE n.id = h.id
    RETURNING n.state
)
SELECT count(*) FILTER (WHERE state <> 'cancelled') AS released,
       count(*) FILTER (WHERE state = 'cancelled') AS cancelled
FROM changed

-- name: claim_due
-- Takes up to $1 due notices for this host; a 'sending' row whose lease ended is due
-- again, which is how a crashed host's claims come back. The new lease is due_at; the time
-- a queued notice was due is kept in claimed_due_at (a lease taken over keeps the first).
-- $5: destination domains paced beyond the near future; their notices stay queued.
-- The rows claimed come back with parts.sql's claimed_notice_columns (waves.sql's queue
-- hands over the same), each with `later`, when the earliest notice left unclaimed is due
-- (so that an idle worker knows how long it may sleep without a second round trip to
-- ask); when nothing is claimed there is one row, of NULLs but `later`.
-- A due notice that its subscriber or address no longer allows (parts.sql's withholding:
-- a category now off, an unsubscribed or undeliverable address, consent withdrawn, the
-- account restricted) is not handed over: it is cancelled, or held as 'restricted', with
-- the reason in last_error, in this statement. $6: the categories the running config
-- turns off by default ([defaults.modes]), withheld where the subscriber chose no mode.
-- $8: the mail streams whose relay's breaker has paused them (settings/streams.py
-- stream_of: 'marketing' for the marketing category and the kinds $7, else
-- 'transactional'); their notices stay queued while the other stream's go.
WITH due AS (
    SELECT id, account_id, category, recipient, category = ANY($6::text[]) AS off_by_default
    FROM notices
    WHERE state IN ('queued', 'sending') AND due_at <= now()
      AND (cardinality($5::text[]) = 0
           OR lower(split_part(recipient, '@', 2)) <> ALL($5::text[]))
      AND (cardinality($8::text[]) = 0
           OR CASE WHEN category = 'marketing' OR kind = ANY($7::text[]) THEN 'marketing'
                   ELSE 'transactional' END <> ALL($8::text[]))
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), checked AS (
    SELECT t.id, w.withheld, w.why FROM due AS t {{withholding}}
), withheld AS (
    -- A lease taken over gives back the time the notice was due.
    UPDATE notices AS n
    SET state = k.withheld, last_error = k.why, claimed_by = NULL, claim_token = NULL,
        due_at = coalesce(n.claimed_due_at, n.due_at), claimed_due_at = NULL
    FROM checked AS k
    WHERE n.id = k.id AND k.withheld IS NOT NULL
), claimed AS (
    UPDATE notices AS n
    SET state = 'sending',
        claimed_by = $2,
        claim_token = $3,
        claimed_due_at = CASE WHEN n.state = 'queued' THEN n.due_at ELSE n.claimed_due_at END,
        due_at = now() + make_interval(secs => $4),
        attempts = n.attempts + 1
    FROM checked AS k
    WHERE n.id = k.id AND k.withheld IS NULL
    RETURNING n.*
)
SELECT {{claimed_notice_columns}},
       -- The statement's snapshot still shows the claimed rows as due: they are left out.
       -- The first of notices_sendable_due, whatever waits behind it (issue 22): the
       -- generic plan a pooled connection caches while `notices` is empty, given min()
       -- or no condition on due_at, read the whole partial index and its rows instead (a
       -- bitmap heap scan: 3,119 buffers a claim with 100,000 deferred notices; 5 so).
       -- The condition excludes nothing; it makes the index scan the cheaper plan.
       (SELECT due_at FROM notices
        WHERE state IN ('queued', 'sending') AND due_at >= '-infinity'
          AND id NOT IN (SELECT id FROM due)
        ORDER BY due_at LIMIT 1) AS later
FROM (SELECT 1) AS one
LEFT JOIN (claimed AS c {{claimed_notice_lookups}}) ON true

-- name: mark_sent_many
-- The sends of one event-loop turn, in one statement (one write to the socket); $1, $2:
-- the notices and their replies, in step. Only the holder of the claim may record it: a
-- host whose lease ran out is ignored. An address that accepts mail again loses its
-- bounce record, unless a report after a 250 counted in it (the relay accepted those too). The connection's next message waits for this commit, so it does not
-- wait for the WAL flush (synchronous_commit off for this transaction only): a daemon
-- crash loses nothing; a database crash may lose the last few hundred ms of these
-- records, and those notices are sent again: duplicates, not loss.
-- due_at gets back the time the notice was due (the claim put its lease there); never
-- later than the send, should a host's clock run ahead of the database's.
WITH sent AS ({{mark_sent}} RETURNING n.id, n.recipient), {{healed}}
SELECT id FROM sent

-- name: mark_sent_many_told
-- mark_sent_many, and in the same statement a callback for each notice whose event came
-- from a source of $4 (those with a [sources.<name>.callback]); only used while one has,
-- so that delivery without callbacks pays nothing for them. The callback shares the
-- record's commit: a crash of the database loses both or neither.
WITH wanted AS (SELECT $4::text[] AS sources),
sent AS ({{mark_sent}} RETURNING n.id, n.recipient, n.event_id, n.category, n.smtp_reply),
{{healed}},
told AS (SELECT id, event_id, category, 'sent' AS state, smtp_reply,
                'notice.delivered' AS type, 0::float8 AS hold FROM sent),
{{tell_callbacks}}
SELECT id FROM sent

-- name: mark_retry
-- $5: the SMTP reply of this attempt; null keeps the last one on file.
UPDATE notices
SET state = 'queued', due_at = $3, last_error = $4, smtp_reply = coalesce($5, smtp_reply),
    claimed_by = NULL, claim_token = NULL, claimed_due_at = NULL
WHERE id = $1 AND claim_token = $2

-- name: mark_failed
{{mark_failed}}

-- name: mark_failed_told
-- mark_failed, and in the same statement the notice's callback ($6: notice.failed or
-- notice.dead_lettered) when its event came from a source of $5, not posted before $7
-- seconds (a refusal the circuit breaker may still withdraw: restore_refused deletes it).
-- The number of notices recorded (0 or 1).
WITH wanted AS (SELECT $5::text[] AS sources),
failed AS ({{mark_failed}} RETURNING n.id, n.event_id, n.category, n.smtp_reply),
told AS (SELECT id, event_id, category, 'failed' AS state, smtp_reply, $6::text AS type,
                $7::float8 AS hold
         FROM failed),
{{tell_callbacks}}
SELECT count(*) FROM failed

-- name: release_claims
-- On a clean stop, whatever this process still holds goes back at once instead of waiting
-- for the lease: claims whose send never started, and sends cut off after the grace period.
UPDATE notices
SET state = 'queued', due_at = now(), claimed_by = NULL, claim_token = NULL,
    claimed_due_at = NULL
WHERE claim_token = $1 AND state = 'sending'

-- name: renew_leases
-- Heartbeat: a host that is still working on its claims keeps them, however slow the relay.
-- Rows locked meanwhile are skipped: they are being recorded, and a statement that waits
-- for the rows of a batch of records (mark_sent_many) while holding others that batch
-- needs is a deadlock; PostgreSQL then aborts one of them.
UPDATE notices SET due_at = now() + make_interval(secs => $2)
WHERE id IN (
    SELECT id FROM notices WHERE claim_token = $1 AND state = 'sending'
    FOR UPDATE SKIP LOCKED
)

-- name: scrape_gauges
-- /metrics' queue gauges, one round trip (docs/operations.md): notices queued and being
-- sent, failed ones (the dead letters), and how long the oldest notice due at $1 has waited
-- (0 when none waits). A 'sending' notice is due again once its lease (due_at) ends. The
-- partial indexes notices_sendable_due and notices_dead_letters answer every part; the
-- oldest is the first entry of notices_sendable_due (docs/performance.md "Scraping").
SELECT
    count(*) FILTER (WHERE state = 'queued') AS queued,
    count(*) FILTER (WHERE state = 'sending') AS sending,
    (SELECT count(*) FROM notices WHERE state = 'failed') AS failed,
    coalesce(extract(epoch FROM $1::timestamptz - (
        SELECT min(due_at) FROM notices
        WHERE state IN ('queued', 'sending') AND due_at <= $1::timestamptz
    )), 0)::float8 AS oldest_due_seconds
FROM notices WHERE state IN ('queued', 'sending')

-- name: notices_of_event
-- An event's notices, as notices_of_account shows them.
SELECT id, event_id, kind, category, recipient, state, attempts, reasons,
       CASE WHEN state = 'sending' THEN coalesce(claimed_due_at, due_at) ELSE due_at END
           AS due_at,
       sent_at, created_at, last_error, smtp_reply
FROM notices WHERE event_id = $1 ORDER BY created_at, id

-- name: notices_of_account
-- "Why did I (not) get this email?": the recent notices with their state and reasons. A
-- notice being sent shows when it was due, not its claim's lease. $3 (optional): only those
-- created before it (the next page), and with $4 (the previous page's last notice) those
-- created at $3 after $4 in the order, as events_of_account.
SELECT id, event_id, kind, category, recipient, state, attempts, reasons,
       CASE WHEN state = 'sending' THEN coalesce(claimed_due_at, due_at) ELSE due_at END
           AS due_at,
       sent_at, created_at, last_error, smtp_reply
FROM notices
WHERE account_id = $1
  AND ($3::timestamptz IS NULL OR created_at < $3 OR (created_at = $3 AND id < $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $2

-- name: retry_failed
-- An admin's retry: a failed notice is queued again now; any other state is reported.
WITH target AS (SELECT id, state FROM notices WHERE id = $1 FOR UPDATE),
retried AS (
    UPDATE notices AS n
    -- A retried notice gets a fresh lifetime: the admin decided it is still worth sending.
    SET state = 'queued', due_at = now(), last_error = NULL, failed_at = NULL,
        retried_at = now()
    FROM target
    WHERE n.id = target.id AND target.state = 'failed'
    RETURNING n.state
)
SELECT coalesce((SELECT state FROM retried), (SELECT state FROM target))

-- name: flush_digests
-- Gathers the held notices whose digest is due ($1) into one digest notice per account,
-- address, category and period, in one statement. Whole groups are taken (never part of
-- one), and the job runs under an advisory lock, so each period gives one digest.
WITH due_groups AS (
    SELECT DISTINCT account_id, category, recipient, digest, due_at
    FROM notices
    WHERE state = 'held' AND due_at <= $1
    LIMIT $2
), held AS (
    SELECT n.id, n.account_id, n.category, n.recipient, n.digest, n.due_at, n.language,
           n.timezone, n.created_at
    FROM notices AS n
    JOIN due_groups AS g USING (account_id, category, recipient, digest, due_at)
    WHERE n.state = 'held'
    FOR UPDATE OF n
), groups AS (
    -- A burst's follow-up and a digest are gathered the same way; `digest` says which.
    SELECT gen_random_uuid() AS digest_id, account_id, category, recipient, digest, due_at,
           (array_agg(language ORDER BY created_at DESC))[1] AS language,
           (array_agg(timezone ORDER BY created_at DESC))[1] AS timezone,
           count(*) AS items
    FROM held
    GROUP BY account_id, category, recipient, digest, due_at
), digests AS (
    INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language,
                         timezone, reasons, due_at, message_id, context)
    SELECT digest_id, NULL, account_id, 'digest', category, recipient, language, timezone,
           -- The time in UTC whatever the session's zone (it was the server's).
           jsonb_build_array(format(
               CASE digest WHEN 'burst'
                   THEN 'follow-up email of a burst: %2$s %3$s notice%4$s gathered until %5$s UTC'
                   ELSE '%1$s digest of %2$s %3$s notice%4$s, period ending %5$s UTC' END,
               digest, items, category, CASE WHEN items = 1 THEN '' ELSE 's' END,
               to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'))),
           now(), '<' || digest_id || '@' || $3::text || '>',
           jsonb_build_object(
               'period', digest, 'category', category, 'period_end', due_at,
               -- Held past the hourly cap for a later digest: the email says how many.
               'waiting', (SELECT count(*) FROM notices AS w
                           WHERE w.account_id = groups.account_id
                             AND w.category = groups.category
                             AND w.recipient = groups.recipient
                             AND w.state = 'held' AND w.due_at > $1))
    FROM groups
    RETURNING id
), gathered AS (
    UPDATE notices AS n
    SET state = 'digested', digest_id = g.digest_id
    FROM held AS h
    JOIN groups AS g USING (account_id, category, recipient, digest, due_at)
    WHERE n.id = h.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM digests) AS digests, (SELECT count(*) FROM gathered) AS items

-- name: digest_items
-- What a digest tells, in the order the events happened.
SELECT n.kind, n.context, e.occurred_at, e.data
FROM notices AS n JOIN events AS e ON e.id = n.event_id
WHERE n.digest_id = $1
ORDER BY e.occurred_at, n.created_at

-- name: dead_letters
-- Failed notices, newest first, with the last SMTP reply; $2 (optional) one category,
-- $3 (optional) only those failed before it (the next page), and with $4 (the previous
-- page's last notice) those failed at $3 after $4 in the order, as events_of_account.
SELECT id, account_id, kind, category, recipient, attempts, last_error, smtp_reply,
       created_at, failed_at
FROM notices
WHERE state = 'failed' AND ($2::text IS NULL OR category = $2)
  AND ($3::timestamptz IS NULL OR failed_at < $3 OR (failed_at = $3 AND id < $4::uuid))
ORDER BY failed_at DESC NULLS LAST, id DESC
LIMIT $1

-- name: restore_refused
-- The circuit breaker opened: notices it had let fail were the relay's refusal, not theirs.
-- Their failure's callbacks not posted yet are withdrawn: they are not failed after all.
WITH restored AS (
    UPDATE notices
    SET state = 'queued', due_at = $2, failed_at = NULL,
        last_error = 'held while the relay refused everything: ' || coalesce(last_error, '')
    WHERE id = ANY($1::uuid[]) AND state = 'failed'
    RETURNING id, lower(recipient) AS recipient
), untold AS (
    DELETE FROM callbacks
    WHERE notice_id IN (SELECT id FROM restored) AND state IN ('pending', 'sending')
)
SELECT recipient FROM restored

-- name: release_held
-- The relay settings were fixed: notices held by the circuit breaker need not wait out its pause.
UPDATE notices SET due_at = now()
WHERE id = ANY($1::uuid[]) AND state = 'queued' AND due_at > now()

-- name: reroute
-- A mandatory notice refused by its address goes to the account's other addresses ($2)
-- that do not have it yet; the copies keep the event, kind and context, and the reasons
-- but those that spoke of the refused address ($6).
INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language, timezone,
                     reasons, due_at, message_id, context, dedupe_key)
SELECT t.id, n.event_id, n.account_id, n.kind, n.category, t.recipient, n.language,
       n.timezone,
       (SELECT coalesce(jsonb_agg(r.reason ORDER BY r.n), '[]'::jsonb)
        FROM jsonb_array_elements_text(n.reasons) WITH ORDINALITY AS r (reason, n)
        WHERE r.reason <> ALL($6::text[])) || jsonb_build_array($4::text),
       now(),
       '<' || t.id || '@' || $5::text || '>', n.context, n.dedupe_key
FROM notices AS n,
     unnest($2::text[], $3::uuid[]) AS t (recipient, id)
WHERE n.id = $1
  AND NOT EXISTS (SELECT 1 FROM notices AS o
                  WHERE o.event_id = n.event_id AND o.kind = n.kind
                    AND lower(o.recipient) = lower(t.recipient))
RETURNING recipient

-- name: purge_notices
-- Retention (storage/retention.py; $1 the batch size): notices done with (the predicate of
-- migration 0013's index notices_retention) of the categories $3, made before $2. A notice
-- waiting or being sent is never purged; rows a worker holds are skipped, not waited for,
-- and so is a digest whose told notices someone holds (parts.sql purge_notice_batch).
WITH batch AS (
    SELECT id FROM notices
    WHERE state IN ('sent', 'failed', 'merged', 'cancelled', 'digested')
      AND category = ANY($3::text[]) AND created_at < $2
    LIMIT $1 FOR UPDATE SKIP LOCKED
)
{{purge_notice_batch}}

-- name: purge_closed_notices
-- Retention: as purge_notices, whatever their age, the notices of the categories $3 of
-- accounts closed before $2.
WITH batch AS (
    SELECT n.id FROM subscribers AS s JOIN notices AS n ON n.account_id = s.account_id
    WHERE s.closed_at < $2 AND n.category = ANY($3::text[])
      AND n.state IN ('sent', 'failed', 'merged', 'cancelled', 'digested')
    LIMIT $1 FOR UPDATE OF n SKIP LOCKED
)
{{purge_notice_batch}}

-- name: reported_notice
-- The notice a bounce or complaint report names (intake/reports.py).
SELECT id, account_id, category, recipient, state, message_id FROM notices WHERE id = $1

-- name: mark_bounced
-- A bounce report for a notice the relay had accepted: failed, the report's words as its
-- reply. Once: the same report posted again finds it failed already and changes nothing.
UPDATE notices
SET state = 'failed', last_error = $2, smtp_reply = $2, failed_at = now()
WHERE id = $1 AND state = 'sent'
