-- Marketing consent (SPEC §2): every grant and withdrawal is kept with its time, source and
-- the version of the wording the subscriber agreed to; the current state is derived from
-- the latest event.
CREATE TABLE consent_events (
    id               bigserial PRIMARY KEY,
    account_id       text NOT NULL,
    purpose          text NOT NULL CHECK (purpose IN ('marketing')),
    granted          boolean NOT NULL,
    source           text NOT NULL,          -- 'subscriber' | 'admin' | 'import' | ...
    wording_version  text NOT NULL,
    recorded_by      text,                    -- the admin token's name
    at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_events_account ON consent_events (account_id, purpose, at DESC, id DESC);

-- Addresses that unsubscribed: never put back on marketing by an import, an
-- account.updated or an admin call; only the subscriber's own new consent lifts it.
CREATE TABLE suppressions (
    address     text NOT NULL,
    list        text NOT NULL CHECK (list IN ('marketing')),
    reason      text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address, list)
);
