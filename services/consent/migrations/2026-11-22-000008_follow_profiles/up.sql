-- What consent learns from the profiles change feed: where it has read to, which subjects
-- were merged into which, and who bought something (soft opt-in, 2002/58/EC art. 13(2)).

-- The position in a change feed consent follows, moved in the same transaction as what a
-- change caused, so every change takes effect exactly once.
CREATE TABLE feed_cursors (
    feed text PRIMARY KEY,
    cursor text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A subject merged into another at profiles: decisions about it are the survivor's now.
CREATE TABLE subject_merges (
    merged_subject_id uuid PRIMARY KEY,
    into_subject_id uuid NOT NULL,
    merged_at timestamptz NOT NULL
);
CREATE INDEX subject_merges_into ON subject_merges (into_subject_id);

-- Subjects with at least one order: existing customers, for whom a soft opt-in purpose is
-- allowed until they object or withdraw.
CREATE TABLE purchases (
    subject_id uuid PRIMARY KEY,
    first_purchase_at timestamptz NOT NULL,
    last_purchase_at timestamptz NOT NULL
);
