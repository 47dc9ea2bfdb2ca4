-- Expand only: hosts of the version before this one keep working on this schema during an
-- upgrade (they write neither column, and read neither).

-- Why an event queued no notice (unknown account, category off, another leg of a call...):
-- {"code": "...", "reason": "..."}, written by the wave's queue statement. NULL when the
-- event queued notices (they carry their own reasons), or when an older host routed it.
ALTER TABLE events ADD COLUMN decision jsonb;

-- A claim keeps its lease in due_at (older hosts take over a 'sending' row by due_at, so it
-- must stay there); the time the notice was due is kept here meanwhile and put back in
-- due_at when the outcome is recorded, so a sent notice was never due after it was sent.
ALTER TABLE notices ADD COLUMN claimed_due_at timestamptz;
