-- Expand only: hosts of the version before this one neither read nor write the columns.

-- Bounces reported after the relay accepted the message (issue 19: the relay's DSNs, posted
-- by the `mta` source). Soft ones (delayed, 4.x.x) are counted, not acted on: an operator
-- sees a mailbox that is full week after week, and nothing stops sending to it.
ALTER TABLE address_health ADD COLUMN soft_bounces integer NOT NULL DEFAULT 0;
-- When a report (hard or soft) last counted against the address. Set, the relay's next
-- 250 does not clear the record: the relay accepted the reported messages too.
ALTER TABLE address_health ADD COLUMN last_report_at timestamptz;
-- The retention purge (query purge_bounces) goes by the last bounce of either kind.
-- (address_health_last_bounce, by the hard ones, is what hosts of the version before read.)
CREATE INDEX IF NOT EXISTS address_health_last_any_bounce
    ON address_health ((greatest(last_bounce_at, last_report_at)));
