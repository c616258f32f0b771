-- The ledger as a change feed in commit order (WatchConsentChanges): the writing transaction
-- and a sequence number, read only up to the oldest transaction still running. Neither is
-- part of an entry's hash: they say when it was written, not what it says.
ALTER TABLE ledger ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE ledger ADD COLUMN feed_seq bigserial;
CREATE INDEX ledger_feed ON ledger (tx, feed_seq);
