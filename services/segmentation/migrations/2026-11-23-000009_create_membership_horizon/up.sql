-- Joins and leaves are kept 30 days. The position of the latest one pruned is the horizon: a
-- watcher resuming from before it has missed changes, and is told to read the members again.
CREATE TABLE membership_horizon (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    tx xid8 NOT NULL,
    seq bigint NOT NULL
);
