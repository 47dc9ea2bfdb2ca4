-- Expand only: hosts of the version before this one neither read nor write the table (they
-- count a re-posted soft bounce twice, as before).

-- The soft bounces already counted, one row per (notice, status): a report posted again
-- (the relay's pipe script retrying after a timeout, a sending service re-sending its
-- webhook) finds its row and counts nothing (intake/reports.py). A different status for the
-- same message (delayed 4.4.1, then expired 4.2.2) is another trouble and counts. No
-- person in it: a notice id, an RFC 3463 status, a time; the row goes with its notice.
CREATE TABLE soft_bounce_reports (
    notice_id   uuid NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
    status      text NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notice_id, status)
);
