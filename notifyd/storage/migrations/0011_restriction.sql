-- Restriction of processing (SPEC §2, issue 18). Expand only: hosts of the version before
-- this one keep working on this schema during an upgrade (they never write either).

-- Set while the subscriber has processing of their account restricted: their events are
-- still stored, but no notice they could refuse is sent. NULL: not restricted.
ALTER TABLE subscribers ADD COLUMN restricted_at timestamptz;

-- 'restricted': a notice held, neither sent nor cancelled, while its account is restricted;
-- lifting the restriction queues it again (or holds it for its digest), or cancels it when
-- its delivery lifetime has passed meanwhile.
ALTER TABLE notices DROP CONSTRAINT notices_state_check;
ALTER TABLE notices ADD CONSTRAINT notices_state_check
    CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'merged', 'cancelled', 'held',
                     'digested', 'restricted'));
CREATE INDEX notices_restricted ON notices (account_id) WHERE state = 'restricted';
