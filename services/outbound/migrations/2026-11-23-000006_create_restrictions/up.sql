-- Subjects whose processing is restricted (GDPR Art. 18): the gate sends them nothing until
-- the restriction is lifted. Set and lifted through PersonalData.Restrict; no row, no
-- restriction.
CREATE TABLE restrictions (
    subject_id uuid PRIMARY KEY,
    restricted_at timestamptz NOT NULL DEFAULT now(),
    request_id uuid NOT NULL
);

-- Erasure requests carried out, with their receipt, so a repeated request answers with the
-- same receipt and erases nothing new.
CREATE TABLE erasures (
    request_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    receipt jsonb NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now()
);
