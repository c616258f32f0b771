-- Loyalty tier programs. A customer's tier is replayed from their orders in the projection
-- whenever it is asked, so no per-customer tier state is stored.
CREATE TABLE tier_programs (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    description text NOT NULL,
    measure text NOT NULL CHECK (measure IN ('orders', 'spend')),
    window_days integer NOT NULL CHECK (window_days BETWEEN 1 AND 3660),
    -- The tiers, lowest first: [{"name": "White", "threshold": 0}, ...].
    tiers jsonb NOT NULL CHECK (jsonb_typeof(tiers) = 'array'
                                AND jsonb_array_length(tiers) BETWEEN 2 AND 10),
    retain_days integer NOT NULL CHECK (retain_days BETWEEN 0 AND 3660),
    downgrade text NOT NULL CHECK (downgrade IN ('one_level', 'to_qualified')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
