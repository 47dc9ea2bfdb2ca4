-- The monthly credit statement (category 'statement', kind 'billing.statement'): balance_history
-- keeps 14 days, a statement needs its month, so each billing event of a subscriber who
-- chose statements adds to its period's row here, in the statement that stores the event
-- (waves.sql queue). One row per account, period (the first day of the subscriber's local
-- month) and currency; queued_at is set, once, by the transaction that queues the period's
-- statement (jobs.py, under an advisory lock): with the notices' dedupe key
-- 'statement:<period>', a period is told once across hosts.
CREATE TABLE credit_statements (
    account_id         text NOT NULL,
    period             date NOT NULL,
    currency           text NOT NULL,
    -- The previous period's closing balance, else the first balance known in this one.
    opening            numeric,
    closing            numeric,
    closing_at         timestamptz,
    top_ups            integer NOT NULL DEFAULT 0,
    top_up_sum         numeric NOT NULL DEFAULT 0,
    payments           integer NOT NULL DEFAULT 0,
    payment_sum        numeric NOT NULL DEFAULT 0,
    low_crossings      integer NOT NULL DEFAULT 0,
    critical_crossings integer NOT NULL DEFAULT 0,
    limit_events       integer NOT NULL DEFAULT 0,
    queued_at          timestamptz,
    PRIMARY KEY (account_id, period, currency)
);
-- The job reads only the periods not yet told; the retention purge old periods.
CREATE INDEX credit_statements_unsent ON credit_statements (period) WHERE queued_at IS NULL;
CREATE INDEX credit_statements_period ON credit_statements (period);
