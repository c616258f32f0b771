DROP INDEX ledger_feed;
ALTER TABLE ledger DROP COLUMN feed_seq;
ALTER TABLE ledger DROP COLUMN tx;
