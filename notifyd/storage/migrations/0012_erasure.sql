-- Erasure (SPEC §2, the subscriber's right to erasure): `notifyd privacy erase` and
-- DELETE /v1/admin/subscribers/{account_id} (notifyd/storage/erasure.py).

-- One row per account whose erasure was asked for: the erasure resumes from it after a
-- crash, a second request answers "already erased", and the operator can show when it was
-- done. The account id is the billing system's own key, which billing retention keeps too;
-- nothing else of the subscriber is here.
CREATE TABLE erasures (
    account_id    text PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    requested_by  text,                     -- the admin token's name, or 'cli'
    kept_notices  integer                   -- billing notices kept for accounting, stripped
);

-- The addresses of erased accounts, only as HMAC-SHA256 under a key kept outside the
-- database ([privacy] erasure_key or state_dir/erasure-key): an import or an admin call
-- that brings one of them back puts it on the suppression list again, so an erased address
-- is never re-added to marketing. No clear address is kept.
CREATE TABLE erased_addresses (
    address_hash  bytea NOT NULL,
    list          text NOT NULL CHECK (list IN ('marketing')),
    erased_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (address_hash, list)
);
