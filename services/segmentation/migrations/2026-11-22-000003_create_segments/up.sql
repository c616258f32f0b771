-- Rule segments: a name, and the rule that says who is in it.
CREATE TABLE segments (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    description text NOT NULL,
    rule text NOT NULL,
    fields text[] NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
