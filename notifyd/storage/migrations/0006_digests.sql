-- Digests, and several addresses per subscriber.

-- 'held': waits in a digest (hourly or daily) until `due_at`, the end of its period;
-- 'digested': told in the digest notice `digest_id`.
ALTER TABLE notices DROP CONSTRAINT notices_state_check;
ALTER TABLE notices ADD CONSTRAINT notices_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'merged', 'cancelled', 'held',
                     'digested'));
ALTER TABLE notices ADD COLUMN digest text CHECK (digest IN ('hourly', 'daily'));
ALTER TABLE notices ADD COLUMN digest_id uuid REFERENCES notices (id) ON DELETE SET NULL;
-- A digest notice tells many events and belongs to none of them.
ALTER TABLE notices ALTER COLUMN event_id DROP NOT NULL;
CREATE INDEX notices_held_due ON notices (due_at) WHERE state = 'held';
CREATE INDEX notices_digest ON notices (digest_id) WHERE digest_id IS NOT NULL;

-- One notice per key per account *and address*: with several addresses, each one gets the
-- notice of a call once.
DROP INDEX notices_account_dedupe;
CREATE UNIQUE INDEX notices_account_dedupe ON notices (account_id, dedupe_key, recipient)
    WHERE dedupe_key IS NOT NULL;
