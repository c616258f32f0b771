-- Sessions of operators and service accounts: a refresh token issued at login, exchanged later
-- for access tokens. The token itself is never stored, only its SHA-256 digest: it is 256
-- random bits, so a fast hash is enough to make a stolen table useless.
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    -- An operator's or a service account's id, after `principal_kind`.
    principal_id uuid NOT NULL,
    principal_kind text NOT NULL CHECK (principal_kind IN ('internal', 'partner', 'operator')),
    token_digest bytea NOT NULL CHECK (octet_length(token_digest) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at timestamptz,
    last_used_at timestamptz,
    CONSTRAINT sessions_token_digest_key UNIQUE (token_digest)
);
CREATE INDEX sessions_principal_id_idx ON sessions (principal_id);
