-- Who is in each rule segment, kept up to date as the projection changes, so member lists and
-- the stream of joins and leaves need no evaluation of every customer.

-- A new segment is swept over every customer once (populated_at set at the end); a segment
-- reading RFM fields is swept again when a new RFM computation finishes. The sweep goes
-- through customers in subject_id order, after sweep_after, one batch a transaction.
ALTER TABLE segments
    ADD COLUMN sweeping boolean NOT NULL DEFAULT true,
    ADD COLUMN sweep_after uuid,
    ADD COLUMN populated_at timestamptz;

CREATE TABLE memberships (
    segment text NOT NULL REFERENCES segments (name),
    subject_id uuid NOT NULL,
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (segment, subject_id)
);
CREATE INDEX memberships_subject ON memberships (subject_id);

-- When a customer's answer for a segment may next change with time alone (a day passes, an
-- order leaves a window): the customer is evaluated again then, and only then.
CREATE TABLE membership_checks (
    segment text NOT NULL REFERENCES segments (name),
    subject_id uuid NOT NULL,
    due_at timestamptz NOT NULL,
    PRIMARY KEY (segment, subject_id)
);
CREATE INDEX membership_checks_due ON membership_checks (due_at);
CREATE INDEX membership_checks_subject ON membership_checks (subject_id);

-- Joins and leaves in commit order, for WatchMembership: read after a cursor (tx, seq) and
-- only from transactions older than every one still running.
CREATE TABLE membership_events (
    seq bigserial PRIMARY KEY,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    segment text NOT NULL REFERENCES segments (name),
    subject_id uuid NOT NULL,
    joined boolean NOT NULL,
    -- Why: 'evaluated' (the customer's facts or the date), 'restricted', 'objected' (to
    -- profiling), 'merged', 'erased'.
    reason text NOT NULL
        CHECK (reason IN ('evaluated', 'restricted', 'objected', 'merged', 'erased')),
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX membership_events_feed ON membership_events (tx, seq);
CREATE INDEX membership_events_subject ON membership_events (subject_id);
