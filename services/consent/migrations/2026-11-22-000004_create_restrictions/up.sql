-- Subjects whose processing is restricted (GDPR Art. 18): every consent check denies them
-- until the restriction is lifted. Set and lifted through PersonalData.Restrict.
CREATE TABLE restrictions (
    subject_id uuid PRIMARY KEY,
    restricted boolean NOT NULL,
    request_id uuid NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- Erasure requests already carried out, so a repeated one answers with the same receipt.
CREATE TABLE erasures (
    request_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now()
);
