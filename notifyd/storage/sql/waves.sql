-- The statements of a wave of webhooks (intake.py): each is one round trip for all the
-- events of the wave, whatever their number. Under load a round trip costs about a
-- millisecond of waiting for the event loop, far more than the rows it carries, so the
-- reads and writes of several tables share a statement here.

-- name: store_and_lock
-- The wave's webhook ids and events stored, and its accounts' subscribers locked (in one
-- order, so that waves cannot deadlock) and read. An id already known stores nothing (a
-- repeat within the wave included). Every row carries the ids of the events stored; there is
-- a row per subscriber found, or one row of NULLs when none is.
WITH incoming AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::text[])
        AS t (id, source, webhook_id, type, account_id, occurred_at, data)
), receipt AS (
    INSERT INTO webhook_receipts (source, webhook_id, event_id)
    SELECT source, webhook_id, id FROM incoming
    ON CONFLICT (source, webhook_id) DO NOTHING
    RETURNING event_id
), stored AS (
    INSERT INTO events (id, source, webhook_id, type, account_id, occurred_at, data)
    SELECT i.id, i.source, i.webhook_id, i.type, i.account_id, i.occurred_at, i.data::jsonb
    FROM incoming AS i JOIN receipt AS r ON r.event_id = i.id
    RETURNING id
), locked AS (
    SELECT account_id, email, name, username, language, timezone, closed_at, voicemail_audio,
           low_credit_threshold, preferences, restricted_at
    FROM subscribers WHERE account_id = ANY($8::text[]) ORDER BY account_id FOR UPDATE
)
SELECT (SELECT coalesce(array_agg(id), '{}') FROM stored) AS stored, l.*
FROM (SELECT) AS one
LEFT JOIN locked AS l ON true

-- name: facts
-- What routing needs for the whole wave, a row per fact:
--   undeliverable  key: an address of $1 marked undeliverable after hard bounces;
--   notified       (account, key): an (account, dedupe key) pair of $5/$6 already notified;
--   credit         (account, key = currency): the stored level and as_of, locked; the state
--                  is created at 'ok' on the first balance, and the no-op update of an
--                  existing row is what locks it in the same round trip;
--   recent         (account, key = category, recipient): that address's emails of the
--                  category lately: how many in the last hour, when the latest goes out ($4
--                  is now), when the follow-up of a burst already gathering goes. Held
--                  notices are not emails (yet); merged, cancelled and failed ones never were.
-- Planned once a connection (waves.py's PLANS), on tables that may have been empty then: it
-- reads `notices` by (account, key) and by the accounts' last day, however large a day or
-- a fan-out makes it, never whole.
WITH credit AS (
    INSERT INTO credit_states AS s (account_id, currency, level, balance, as_of)
    SELECT account_id, currency, 'ok', NULL, NULL
    FROM unnest($7::text[], $8::text[]) AS t (account_id, currency)
    ORDER BY account_id, currency
    ON CONFLICT (account_id, currency) DO UPDATE SET level = s.level
    RETURNING account_id, currency, level, as_of
)
SELECT 'undeliverable' AS fact, NULL::text AS account_id, address AS key,
       NULL::text AS recipient, NULL::text AS level, NULL::bigint AS last_hour,
       NULL::timestamptz AS last_at, NULL::timestamptz AS burst_at
FROM address_health WHERE address = ANY($1::text[]) AND undeliverable_at IS NOT NULL
UNION ALL
SELECT 'notified', k.account_id, k.dedupe_key, NULL, NULL, NULL, NULL, NULL
FROM unnest($5::text[], $6::text[]) AS k (account_id, dedupe_key)
-- A lateral LIMIT 1, not EXISTS: a generic plan turns EXISTS into a join that reads every
-- notice of the accounts; this is one lookup of (account, key) a pair.
CROSS JOIN LATERAL (SELECT FROM notices AS n
                    WHERE n.account_id = k.account_id AND n.dedupe_key = k.dedupe_key
                    LIMIT 1) AS found
UNION ALL
SELECT 'credit', account_id, currency, NULL, level, NULL, as_of, NULL FROM credit
UNION ALL
SELECT 'recent', account_id, category, lower(recipient), NULL,
       count(*) FILTER (WHERE email AND created_at > $4::timestamptz - interval '1 hour'),
       max(CASE state WHEN 'sent' THEN sent_at WHEN 'queued' THEN due_at ELSE $4 END)
           FILTER (WHERE email),
       max(due_at) FILTER (WHERE state = 'held' AND digest = 'burst')
FROM (
    SELECT n.account_id, n.category, n.recipient, n.state, n.created_at, n.sent_at, n.due_at,
           n.digest, n.state IN ('queued', 'sending', 'sent') AND n.digest IS NULL AS email
    FROM unnest($2::text[], $3::text[]) AS k (account_id, category)
    JOIN notices AS n ON n.account_id = k.account_id AND n.category = k.category
    WHERE n.account_id = ANY($2::text[]) AND n.created_at > $4::timestamptz - interval '1 day'
) AS recent
GROUP BY account_id, category, lower(recipient)

-- name: queue
-- The wave's writes: its notices (as notices.sql's insert_notices: a notice whose dedupe
-- key the account already has is not inserted, one for a digest is 'held'), its credit
-- levels with each balance into the spending history, and a wake-up for the delivery
-- workers (sent at commit) when a new notice among $15 is due now.
-- The notices among $21 are claimed by this host as they are inserted ($22 the owner, $23
-- the claim token, $24 the lease in seconds), as claim_due would claim them: their rows
-- come back with parts.sql's claimed_notice_columns, as claim_due's do, to be sent without
-- a claim of their own; of the others only the id counts.
-- Each event of $26 that queues nothing gets its decision $27 ({"code", "reason"}); one
-- whose $28 is true only if none of its notices was inserted (their dedupe keys taken).
-- An update of a row this transaction inserted: no extra round trip, and only for the
-- events that queue nothing.
-- What claim_due withholds (parts.sql's withholding) routing already decided, on the
-- subscriber's row this wave holds locked since store_and_lock (its preferences, modes and
-- restriction: every change of them writes that row, so waits for this commit), and on
-- the facts: the notices of $29 are of a restricted account, stored 'restricted' with
-- restrict_waiting's reason. No event of the catalogue is marketing, so consent and
-- suppressions have nothing to say here. An address marked undeliverable by a bounce
-- after the facts were read locks no subscriber: a notice of $30 (claimed, not mandatory)
-- to such an address is left queued instead, for claim_due to cancel, saying why.
-- The billing events of subscribers who chose the monthly statement add to their period's
-- row of credit_statements ($31-$41, model.StatementEntry; a wave has an account once, so
-- a row at most once): counts and sums add up, the latest balance is the closing one, and
-- a new row opens at the previous period's closing balance, else at the one the event
-- implies.
WITH added AS (
    INSERT INTO notices (id, event_id, account_id, kind, category, recipient, language,
                         timezone, reasons, due_at, message_id, context, dedupe_key, digest,
                         state, claimed_by, claim_token, attempts, claimed_due_at, last_error)
    SELECT id, event_id, account_id, kind, category, recipient, language, timezone,
           reasons::jsonb, CASE WHEN claim THEN now() + make_interval(secs => $24) ELSE due_at END,
           message_id, context::jsonb, dedupe_key, digest,
           CASE WHEN held THEN 'restricted' WHEN digest IS NOT NULL THEN 'held'
                WHEN claim THEN 'sending' ELSE 'queued' END,
           CASE WHEN claim THEN $22 END, CASE WHEN claim THEN $23::uuid END,
           CASE WHEN claim THEN 1 ELSE 0 END, CASE WHEN claim THEN due_at END,
           CASE WHEN held THEN 'held: processing of the account is restricted' END
    FROM (SELECT t.*,
                 id = ANY($21::uuid[])
                 AND NOT (id = ANY($30::uuid[])
                          AND EXISTS (SELECT 1 FROM address_health AS h
                                      WHERE h.address = lower(t.recipient)
                                        AND h.undeliverable_at IS NOT NULL)) AS claim,
                 id = ANY($29::uuid[]) AS held
          FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                      $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[],
                      $12::text[], $13::text[], $14::text[])
               AS t (id, event_id, account_id, kind, category, recipient, language, timezone,
                     reasons, due_at, message_id, context, dedupe_key, digest)) AS t
    ON CONFLICT (account_id, dedupe_key, recipient) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING *
), levels AS (
    SELECT * FROM unnest($16::text[], $17::text[], $18::text[], $19::numeric[],
                         $20::timestamptz[]) AS t (account_id, currency, level, balance, as_of)
), saved AS (
    UPDATE credit_states AS s SET level = l.level, balance = l.balance, as_of = l.as_of
    FROM levels AS l
    -- `= ANY` as well as the join: the key a generic plan reads credit_states by (PLANS).
    WHERE s.account_id = ANY($16::text[])
      AND s.account_id = l.account_id AND s.currency = l.currency
), history AS (
    INSERT INTO balance_history (account_id, currency, balance, at)
    SELECT account_id, currency, balance, as_of FROM levels
), woke AS (
    SELECT pg_notify($25, '') FROM added WHERE id = ANY($15::uuid[]) LIMIT 1
), statement AS (
    INSERT INTO credit_statements AS s (account_id, period, currency, opening, closing,
                                        closing_at, top_ups, top_up_sum, payments,
                                        payment_sum, low_crossings, critical_crossings,
                                        limit_events)
    SELECT e.account_id, e.period, e.currency,
           -- The latest earlier period's closing balance, found by the account's key. The
           -- period compared and sorted as `period + 0`: the period index could serve
           -- neither, so no plan walks it across every account's periods (a generic plan
           -- made on an empty table, waves.py's PLANS, did: test_wave_plans.py).
           coalesce((SELECT p.closing FROM credit_statements AS p
                     WHERE p.account_id = e.account_id AND p.currency = e.currency
                       AND p.period + 0 < e.period AND p.closing IS NOT NULL
                     ORDER BY p.period + 0 DESC LIMIT 1), e.opening),
           e.balance, CASE WHEN e.balance IS NOT NULL THEN e.at END,
           (e.top_up IS NOT NULL)::int, coalesce(e.top_up, 0),
           (e.payment IS NOT NULL)::int, coalesce(e.payment, 0), e.low, e.critical, e.lim
    FROM unnest($31::text[], $32::date[], $33::text[], $34::numeric[], $35::timestamptz[],
                $36::numeric[], $37::numeric[], $38::numeric[], $39::int[], $40::int[],
                $41::int[])
         AS e (account_id, period, currency, balance, at, opening, top_up, payment, low,
               critical, lim)
    ON CONFLICT (account_id, period, currency) DO UPDATE SET
        opening = coalesce(s.opening, excluded.opening),
        -- A balance older than the one kept (arriving late) is not the closing one.
        closing = CASE WHEN excluded.closing_at >= s.closing_at OR s.closing_at IS NULL
                       THEN coalesce(excluded.closing, s.closing) ELSE s.closing END,
        closing_at = CASE WHEN excluded.closing_at >= s.closing_at OR s.closing_at IS NULL
                          THEN coalesce(excluded.closing_at, s.closing_at)
                          ELSE s.closing_at END,
        top_ups = s.top_ups + excluded.top_ups,
        top_up_sum = s.top_up_sum + excluded.top_up_sum,
        payments = s.payments + excluded.payments,
        payment_sum = s.payment_sum + excluded.payment_sum,
        low_crossings = s.low_crossings + excluded.low_crossings,
        critical_crossings = s.critical_crossings + excluded.critical_crossings,
        limit_events = s.limit_events + excluded.limit_events
), decided AS (
    UPDATE events AS e SET decision = d.decision::jsonb
    FROM unnest($26::uuid[], $27::text[], $28::bool[]) AS d (id, decision, unless_queued)
    -- `= ANY` as well as the join: the key a generic plan reads events by (PLANS).
    WHERE e.id = ANY($26::uuid[]) AND e.id = d.id
      AND NOT (d.unless_queued AND EXISTS (SELECT 1 FROM added AS a WHERE a.event_id = d.id))
)
SELECT c.state = 'sending' AS claimed, {{claimed_notice_columns}}
FROM added AS c
{{claimed_notice_lookups}}
-- Read once, so that the wake-up above is sent (at most one) whatever this returns.
CROSS JOIN (SELECT count(*) FROM woke) AS w
