-- Data subject requests, with their deadline: one calendar month from receipt (Art. 12(3)),
-- plus the days verification of the requester took, plus at most one extension.
CREATE TABLE requests (
    id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    type text NOT NULL CHECK (type IN ('access', 'portability', 'erasure', 'rectification',
        'restriction', 'lift_restriction', 'objection')),
    status text NOT NULL CHECK (status IN ('awaiting_verification', 'awaiting_approval',
        'in_progress', 'completed', 'rejected')),
    channel text NOT NULL,
    received_at timestamptz NOT NULL,
    -- The deadline as it stands; while the requester is being verified it moves on each day.
    due_on date NOT NULL,
    paused_since timestamptz,
    paused_days integer NOT NULL DEFAULT 0 CHECK (paused_days >= 0),
    extension_months integer NOT NULL DEFAULT 0 CHECK (extension_months BETWEEN 0 AND 2),
    extension_reason text,
    rejection_reason text,
    submitted_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX requests_urgency ON requests (due_on, received_at, id);
CREATE INDEX requests_subject ON requests (subject_id);

-- Every change of a request's state: who, when, what. Append-only, like the ledger.
CREATE TABLE request_events (
    id uuid PRIMARY KEY,
    request_id uuid NOT NULL REFERENCES requests (id),
    from_status text,
    to_status text NOT NULL,
    principal text NOT NULL,
    principal_kind text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    note text NOT NULL
);
CREATE INDEX request_events_request ON request_events (request_id, at, id);
REVOKE UPDATE, DELETE, TRUNCATE ON request_events FROM CURRENT_USER;
