-- Expand only: hosts of the version before this one neither read nor write the column.

-- Preference links made before this moment no longer open (an admin revoked them: a
-- forwarded email, a shared mailbox). Kept to the millisecond, as links carry their time.
-- NULL: none revoked.
ALTER TABLE subscribers ADD COLUMN links_revoked_at timestamptz;
