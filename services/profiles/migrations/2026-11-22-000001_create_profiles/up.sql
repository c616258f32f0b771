-- Customer profiles: personal values are sealed with a per-subject data key, identifiers are
-- found through blind indexes, and nothing readable about a person is stored in clear.

-- One data key per subject, wrapped by the service master key. Deleting the row is the erasure:
-- every ciphertext of that subject, in any copy of the database, becomes unreadable.
CREATE TABLE subject_keys (
    subject_id uuid PRIMARY KEY,
    wrapped_key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Live profiles and tombstones: a merged subject points to the profile it was merged into; an
-- erased subject keeps only its id and dates.
CREATE TABLE profiles (
    subject_id uuid PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    restricted_at timestamptz,
    merged_into uuid REFERENCES profiles (subject_id),
    merged_at timestamptz,
    erased_at timestamptz,
    CHECK ((merged_into IS NULL) = (merged_at IS NULL))
);
CREATE INDEX profiles_merged_into ON profiles (merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE identifiers (
    id uuid PRIMARY KEY,
    subject_id uuid NOT NULL REFERENCES profiles (subject_id),
    kind text NOT NULL CHECK (kind IN ('email', 'phone', 'loyalty_number', 'partner_reference', 'custom')),
    -- Partner and custom type names are the business's vocabulary, not personal data.
    partner_id text CHECK ((kind = 'partner_reference') = (partner_id IS NOT NULL)),
    custom_type text CHECK ((kind = 'custom') = (custom_type IS NOT NULL)),
    -- HMAC-SHA256 of the kind and normalised value: an identifier names at most one profile.
    lookup text NOT NULL UNIQUE,
    sealed_value bytea NOT NULL,
    verified_at timestamptz,
    verification_method text,
    source text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identifiers_subject ON identifiers (subject_id);
CREATE INDEX identifiers_partner ON identifiers (partner_id, subject_id) WHERE partner_id IS NOT NULL;

CREATE TABLE attribute_definitions (
    key text PRIMARY KEY,
    value_type text NOT NULL CHECK (value_type IN ('string', 'number', 'bool', 'timestamp')),
    description text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every value an attribute had: `current` marks the one in force, the others are its history.
CREATE TABLE attribute_values (
    id uuid PRIMARY KEY,
    subject_id uuid NOT NULL REFERENCES profiles (subject_id),
    -- "given_name", ..., or "custom.<key>".
    name text NOT NULL,
    -- NULL when the attribute was cleared.
    sealed_value bytea,
    source text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    current boolean NOT NULL
);
CREATE UNIQUE INDEX attribute_values_current ON attribute_values (subject_id, name) WHERE current;
CREATE INDEX attribute_values_subject ON attribute_values (subject_id, id);

CREATE TABLE interactions (
    id uuid PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    -- NULL once the subject is erased and only what accounting law requires is kept.
    subject_id uuid REFERENCES profiles (subject_id),
    kind text NOT NULL,
    channel text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    -- Orders and returns: kept, unlinked from the subject, after an erasure.
    order_id text,
    amount_minor bigint,
    currency text,
    -- The whole interaction, sealed with the subject's key; NULL once erased.
    sealed_payload bytea,
    expires_at timestamptz NOT NULL
);
CREATE INDEX interactions_subject ON interactions (subject_id, occurred_at DESC, id DESC);
CREATE INDEX interactions_expiry ON interactions (expires_at);

-- The change feed. `tx` orders changes by the transaction that wrote them; a reader only
-- returns changes of transactions older than every transaction still running, so no change
-- can later appear before the reader's cursor.
CREATE TABLE changes (
    seq bigserial PRIMARY KEY,
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
    subject_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('created', 'updated', 'merged', 'erased', 'restricted', 'interaction_recorded')),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    merged_subject_id uuid,
    restricted boolean,
    interaction_id uuid
);
CREATE INDEX changes_order ON changes (tx, seq);
CREATE INDEX changes_subject ON changes (subject_id);

-- Who read or wrote whose personal data, for which purpose.
CREATE TABLE access_log (
    id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    principal text NOT NULL,
    principal_kind text NOT NULL,
    partner_id text,
    on_behalf_of text,
    purpose text NOT NULL,
    method text NOT NULL,
    action text NOT NULL CHECK (action IN ('read', 'write')),
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_log_subject ON access_log (subject_id, at);

CREATE TABLE merges (
    id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    merged_subject_id uuid NOT NULL,
    -- Free text may name the person: sealed with the surviving subject's key.
    sealed_reason bytea NOT NULL,
    principal text NOT NULL,
    merged_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merges_subject ON merges (subject_id);

-- Recipients of a subject's data (GDPR Art. 19): every disclosure to a partner.
CREATE TABLE disclosures (
    id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    partner_id text NOT NULL,
    fields text[] NOT NULL,
    disclosed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disclosures_subject ON disclosures (subject_id);

-- Receipts of executed erasures, so a repeated request returns the first receipt.
CREATE TABLE erasures (
    request_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    receipt jsonb NOT NULL,
    completed_at timestamptz NOT NULL DEFAULT now()
);
