-- The audit trail (docs/privacy.md): who changed
-- what and when, never the personal data itself. Append only: the daemon inserts rows, and
-- deletes only those older than [audit] keep_days (purge_audit); an UPDATE is refused here.
-- Expand only: hosts of the version before this one neither read nor write it.
CREATE TABLE audit (
    id          bigserial PRIMARY KEY,
    -- clock_timestamp(): the moment of the change, distinct for changes of one transaction.
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- An admin token's name, 'subscriber link', 'config' or 'cli'.
    actor       text NOT NULL,
    -- What was done: 'subscriber.changed', 'consent.withdrawn', 'config.reloaded', ...
    action      text NOT NULL,
    -- The account it concerns, when there is one.
    account_id  text,
    -- Non-personal detail: the names of the fields changed, counts, ids of notices.
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_at ON audit (at DESC, id DESC);
CREATE INDEX audit_account ON audit (account_id, at DESC, id DESC) WHERE account_id IS NOT NULL;

CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: rows are never updated';
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();
