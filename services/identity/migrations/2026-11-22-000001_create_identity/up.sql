-- The keys that sign tokens: at most one next and one active; retired keys stay published
-- until every token they signed has expired.
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    public_key bytea NOT NULL CHECK (octet_length(public_key) = 32),
    -- PKCS#8 private key sealed with the service master key (AES-256-GCM, context = kid).
    private_key_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at timestamptz,
    verify_until timestamptz,
    CHECK ((state = 'retired') = (verify_until IS NOT NULL))
);
CREATE UNIQUE INDEX signing_keys_one_per_live_state ON signing_keys (state)
    WHERE state IN ('next', 'active');

-- Internal services and partners.
CREATE TABLE service_accounts (
    id uuid PRIMARY KEY,
    client_id text NOT NULL,
    display_name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('internal', 'partner')),
    partner_id text,
    scopes text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CONSTRAINT service_accounts_client_id_key UNIQUE (client_id),
    CHECK ((kind = 'partner') = (partner_id IS NOT NULL))
);

-- Argon2id hashes (PHC strings) of client secrets; at most two active per account.
CREATE TABLE service_account_secrets (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES service_accounts (id),
    secret_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    removed_at timestamptz
);
CREATE INDEX service_account_secrets_account_id_idx ON service_account_secrets (account_id);

-- People who run the suite.
CREATE TABLE operators (
    id uuid PRIMARY KEY,
    username text NOT NULL,
    password_hash text NOT NULL,
    roles text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CONSTRAINT operators_username_key UNIQUE (username)
);

-- Login attempts per login name and source address, both as blind indexes (HMAC under a key
-- derived from the master key): unknown names are counted like known ones, and neither names
-- nor addresses are stored. `pending` counts attempts being checked right now.
CREATE TABLE login_attempts (
    attempt_key text PRIMARY KEY,
    name_key text NOT NULL,
    failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    pending integer NOT NULL DEFAULT 0 CHECK (pending >= 0),
    last_attempt_at timestamptz NOT NULL,
    blocked_until timestamptz
);
CREATE INDEX login_attempts_name_key_idx ON login_attempts (name_key);

-- Revoked tokens, kept until they expire.
CREATE TABLE revoked_tokens (
    jti text PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
