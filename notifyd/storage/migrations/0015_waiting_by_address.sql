-- Consent that acts at once for every account writing to an address (issue 18): an address
-- unsubscribed from marketing or marked undeliverable cancels the waiting notices to it of
-- every account (notices.sql cancel_waiting_to). Without this index that statement reads
-- every waiting notice (a broadcast's queue: hundreds of thousands) for each address an
-- unsubscribe, a bounce or an import row suppresses. Partial: a notice is in it only while
-- it waits (queued, held, restricted), not once claimed, sent or cancelled.
--
-- On a large existing database this build blocks writes to notices while it runs (the
-- migration's transaction: not CONCURRENTLY); build it first with CREATE INDEX CONCURRENTLY
-- and this definition, and the migration skips it (docs/privacy.md, "Retention").
CREATE INDEX IF NOT EXISTS notices_waiting_recipient ON notices (lower(recipient))
    WHERE state IN ('queued', 'held', 'restricted');
