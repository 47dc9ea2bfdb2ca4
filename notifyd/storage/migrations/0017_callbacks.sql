-- Delivery callbacks out (issue 19): what became of the notices of a source's events, told
-- back to that source ([sources.<name>.callback]) as signed Standard Webhooks. A row is
-- written in the statement that records the notice's outcome (notices.sql
-- mark_sent_many_told, mark_failed_told), so an outcome is never recorded without its
-- callback; delivery/callbacks.py posts the rows until the receiver answers 2xx, claiming
-- them with a lease as notices are claimed. Nothing in a row names a person: ids, a
-- category, a state, an SMTP reply code. The receiver's URL and secret stay in the config.
CREATE TABLE callbacks (
    -- Also the callback's webhook-id: every retry carries the same, for the receiver to
    -- dedupe.
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The notice told about (for a digest, each notice it gathered); the row goes with it
    -- (retention, erasure).
    notice_id         uuid NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
    event_id          uuid NOT NULL,
    account_id        text NOT NULL,
    source            text NOT NULL,
    -- The source's own webhook-id of the event, for it to find what it posted.
    source_webhook_id text NOT NULL,
    event_type        text NOT NULL,
    type              text NOT NULL
                      CHECK (type IN ('notice.delivered', 'notice.failed', 'notice.dead_lettered')),
    category          text NOT NULL,
    notice_state      text NOT NULL,
    smtp_code         smallint,
    -- When the outcome was recorded (the payload's timestamp; the maximum age counts from it).
    occurred_at       timestamptz NOT NULL DEFAULT now(),
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'sending', 'delivered', 'abandoned')),
    -- 'pending': when to post it next; 'sending': when the claim's lease ends.
    due_at            timestamptz NOT NULL DEFAULT now(),
    attempts          integer NOT NULL DEFAULT 0,
    claim_token       uuid,
    -- The last attempt's answer (an HTTP status or an error's kind), and why it was given up.
    last_error        text,
    done_at           timestamptz
);
-- Claims read only the rows still to post.
CREATE INDEX callbacks_due ON callbacks (due_at) WHERE state IN ('pending', 'sending');
-- A notice's deletion (retention, erasure) finds its callbacks; a breaker's restore too.
CREATE INDEX callbacks_notice ON callbacks (notice_id);
CREATE INDEX callbacks_account ON callbacks (account_id);
-- Retention: finished rows by age.
CREATE INDEX callbacks_done ON callbacks (occurred_at) WHERE state IN ('delivered', 'abandoned');
