-- The whole catalogue: per-notice context, one notice per call, attachments, credit state.

-- What the router computed for the template (the merged missed call, an attachment's
-- status, a threshold...): rendering never queries the database.
ALTER TABLE notices ADD COLUMN context jsonb NOT NULL DEFAULT '{}';

-- One notice per key per account: legs of one call (ring groups, follow-me, queues) share
-- the key "call:<call_id>", so only the first leg creates a notice.
ALTER TABLE notices ADD COLUMN dedupe_key text;
CREATE UNIQUE INDEX notices_account_dedupe ON notices (account_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;

-- 'merged': a missed call folded into the voicemail email of the same call.
ALTER TABLE notices DROP CONSTRAINT notices_state_check;
ALTER TABLE notices ADD CONSTRAINT notices_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'merged'));

ALTER TABLE subscribers ADD COLUMN voicemail_audio boolean NOT NULL DEFAULT true;
-- The subscriber's own low-credit threshold; never below the admin's (enforced on write).
ALTER TABLE subscribers ADD COLUMN low_credit_threshold numeric;

-- Voicemail audio and fax documents. The bytes stay only until the notice is delivered
-- and the configured retention has passed; then `content` is cleared.
CREATE TABLE attachments (
    id             uuid PRIMARY KEY,
    event_id       uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    role           text NOT NULL,            -- 'audio' | 'document'
    filename       text NOT NULL,
    declared_type  text NOT NULL,
    content_type   text,                     -- detected from the bytes
    size_bytes     bigint,
    content        bytea,
    source_url     text,                     -- fetched from the PBX when not inline
    -- Besides [attachments] fetch_allow_hosts, where this URL may be fetched from: the
    -- address that posted the webhook and its source's allow_from networks.
    fetch_hosts    text[] NOT NULL DEFAULT '{}',
    state          text NOT NULL CHECK (state IN ('pending', 'ready', 'failed', 'purged')),
    fetch_attempts integer NOT NULL DEFAULT 0,
    last_error     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    purge_after    timestamptz
);
CREATE INDEX attachments_event ON attachments (event_id);
CREATE INDEX attachments_purge ON attachments (purge_after) WHERE content IS NOT NULL;

-- Which low-credit notices have been sent per account and currency; the row is locked
-- while a balance update is applied, so concurrent updates cannot notify twice.
CREATE TABLE credit_states (
    account_id  text NOT NULL,
    currency    text NOT NULL,
    level       text NOT NULL CHECK (level IN ('ok', 'low', 'critical')),
    balance     numeric,
    as_of       timestamptz,                 -- the event time of the balance applied last
    PRIMARY KEY (account_id, currency)
);

-- Recent balances, for "about N days of credit left" at the recent spending rate.
CREATE TABLE balance_history (
    account_id  text NOT NULL,
    currency    text NOT NULL,
    balance     numeric NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX balance_history_account ON balance_history (account_id, currency, at);
