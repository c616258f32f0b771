-- Carrying out an approved request: one task per service and action, driven by a worker that
-- retries with backoff and picks up after a crash (a claimed task's lease runs out).
CREATE TABLE request_tasks (
    request_id uuid NOT NULL REFERENCES requests (id),
    service text NOT NULL,
    action text NOT NULL CHECK (action IN ('export', 'erase', 'verify_erased', 'restrict',
        'lift_restriction')),
    state text NOT NULL CHECK (state IN ('pending', 'done')),
    attempts integer NOT NULL DEFAULT 0,
    -- The current claim: only the worker holding it may record the outcome.
    claim_id uuid,
    last_error text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- What the service answered (export records, erasure receipt), sealed with the master key:
    -- an export is personal data.
    sealed_result bytea,
    completed_at timestamptz,
    PRIMARY KEY (request_id, service, action)
);
CREATE INDEX request_tasks_due ON request_tasks (next_attempt_at) WHERE state = 'pending';
