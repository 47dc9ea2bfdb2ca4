-- Broadcasts from the admin: one event row holds the content, and the fan-out queues one
-- notice per open account in batches, remembering where it stopped (the cursor), so a
-- million subscribers are neither one huge transaction nor lost by a restart.
CREATE TABLE broadcasts (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL
                 CHECK (kind IN ('notice.policy_changed', 'notice.service', 'marketing.offer')),
    event_id     uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    state        text NOT NULL DEFAULT 'scheduled'
                 CHECK (state IN ('scheduled', 'running', 'done', 'cancelled')),
    starts_at    timestamptz NOT NULL DEFAULT now(),
    cursor       text NOT NULL DEFAULT '',   -- the last account_id fanned out
    queued       bigint NOT NULL DEFAULT 0,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX broadcasts_runnable ON broadcasts (starts_at) WHERE state IN ('scheduled', 'running');

-- A cancelled broadcast's notices that were still waiting.
ALTER TABLE notices DROP CONSTRAINT notices_state_check;
ALTER TABLE notices ADD CONSTRAINT notices_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'merged', 'cancelled'));
