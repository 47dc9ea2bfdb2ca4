-- The delivery engine: dead letters, hard bounces and undeliverable addresses.

-- When a notice failed for good: the dead-letter view lists them newest first.
ALTER TABLE notices ADD COLUMN failed_at timestamptz;
-- An admin's retry of a dead letter: its lifetime counts from then.
ALTER TABLE notices ADD COLUMN retried_at timestamptz;
CREATE INDEX notices_dead_letters ON notices (failed_at DESC) WHERE state = 'failed';

-- Hard bounces (5xx) per address; at [delivery] bounce_limit the address is marked
-- undeliverable and notices go to the account's other addresses instead.
CREATE TABLE address_health (
    address          text PRIMARY KEY,          -- lower case
    hard_bounces     integer NOT NULL DEFAULT 0,
    last_reply       text,
    last_bounce_at   timestamptz,
    undeliverable_at timestamptz
);

-- 'burst': a missed call held for the follow-up email of a burst of calls.
ALTER TABLE notices DROP CONSTRAINT notices_digest_check;
ALTER TABLE notices ADD CONSTRAINT notices_digest_check
    CHECK (digest IN ('hourly', 'daily', 'burst'));
