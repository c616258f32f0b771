-- Customers who objected to profiling (GDPR Art. 21): their latest decision at consent for the
-- purpose `profiling` is a withdrawal. While it stands they are in no segment, no RFM score
-- and no tier. Kept apart from `customers` because the decision may arrive before the
-- customer's first change at profiles.
CREATE TABLE profiling_objections (
    subject_id uuid PRIMARY KEY,
    objected_at timestamptz NOT NULL,
    -- The consent ledger entry that withdrew it.
    entry_id uuid NOT NULL
);
