-- Signed checkpoints of the ledger: at each, the head (last sequence and hash) of every
-- subject's chain, signed with Ed25519. A removed or rewritten entry that a checkpoint covers
-- is found even when every later hash was recomputed: the signed head no longer matches.
-- Each checkpoint stores only the heads that moved since the one before. Append-only, and
-- without foreign keys (checking one needs the UPDATE privilege revoked here).
CREATE TABLE checkpoints (
    id uuid PRIMARY KEY,
    taken_at timestamptz NOT NULL,
    previous_id uuid,
    subjects bigint NOT NULL,
    heads_digest bytea NOT NULL,
    public_key bytea NOT NULL,
    signature bytea NOT NULL
);
CREATE INDEX checkpoints_order ON checkpoints (taken_at, id);

CREATE TABLE checkpoint_heads (
    checkpoint_id uuid NOT NULL,
    subject_id uuid NOT NULL,
    sequence bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (checkpoint_id, subject_id)
);
CREATE INDEX checkpoint_heads_subject ON checkpoint_heads (subject_id, sequence DESC);
REVOKE UPDATE, DELETE, TRUNCATE ON checkpoints, checkpoint_heads FROM CURRENT_USER;
