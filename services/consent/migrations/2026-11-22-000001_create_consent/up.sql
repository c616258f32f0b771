-- Processing purposes, each with its lawful basis.
CREATE TABLE purposes (
    key text PRIMARY KEY,
    -- UUID v7: listing pages by creation order.
    id uuid NOT NULL UNIQUE,
    description text NOT NULL,
    lawful_basis text NOT NULL CHECK (lawful_basis IN ('consent', 'contract', 'legal_obligation',
        'vital_interests', 'public_task', 'legitimate_interest', 'soft_opt_in')),
    channels text[] NOT NULL,
    data_categories text[] NOT NULL,
    retention_days integer NOT NULL CHECK (retention_days >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The notices shown when asking for consent; a version is the SHA-256 of the text, and a
-- notice never changes once published.
CREATE TABLE notices (
    purpose_key text NOT NULL REFERENCES purposes (key),
    version text NOT NULL,
    text text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (purpose_key, version)
);
REVOKE UPDATE, DELETE, TRUNCATE ON notices FROM CURRENT_USER;

-- The consent ledger: append-only (the service's own role may not change or delete a row), each
-- entry hash-chained to the previous entry of the same subject. Keyed by subject id only: it
-- holds no name or address, so it outlives the profile's erasure as proof of consent
-- (Art. 7(1)).
CREATE TABLE ledger (
    id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    sequence bigint NOT NULL CHECK (sequence >= 1),
    purpose_key text NOT NULL REFERENCES purposes (key),
    decision text NOT NULL CHECK (decision IN ('granted', 'withdrawn')),
    channel text NOT NULL,
    collection_point text NOT NULL,
    notice_version text,
    ip_hash text,
    user_agent text,
    form_id text,
    expires_at timestamptz,
    recorded_by text NOT NULL,
    recorded_by_kind text NOT NULL,
    recorded_at timestamptz NOT NULL,
    previous_hash bytea NOT NULL,
    hash bytea NOT NULL,
    -- Two writers appending to one subject's chain at once: one of them must retry.
    -- (No foreign key to `notices`: checking one locks the notice FOR KEY SHARE, which needs
    -- the UPDATE privilege revoked below; the service checks the notice exists.)
    UNIQUE (subject_id, sequence)
);
CREATE INDEX ledger_decisions ON ledger (purpose_key, channel, subject_id, sequence DESC);
REVOKE UPDATE, DELETE, TRUNCATE ON ledger FROM CURRENT_USER;
