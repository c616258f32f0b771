-- RFM computations: one row per job, with its progress; the latest finished one is current.
CREATE TABLE rfm_jobs (
    id uuid PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    as_of date NOT NULL,
    window_days integer NOT NULL CHECK (window_days BETWEEN 1 AND 3660),
    bins integer NOT NULL CHECK (bins BETWEEN 2 AND 10),
    currency text NOT NULL,
    steps_done integer NOT NULL DEFAULT 0,
    steps_total integer NOT NULL,
    customers bigint,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error text
);
CREATE INDEX rfm_jobs_finished ON rfm_jobs (finished_at) WHERE state = 'done';

-- Each scored customer's measures, scores and segment, per job. No foreign key and no index
-- beyond the key: a computation writes a million rows at once (in key order), and a subject's
-- rows are found job by job through the key.
CREATE TABLE rfm_scores (
    job_id uuid NOT NULL,
    subject_id uuid NOT NULL,
    recency_days integer NOT NULL CHECK (recency_days >= 0),
    frequency integer NOT NULL CHECK (frequency > 0),
    monetary_minor bigint NOT NULL,
    r smallint,
    f smallint,
    m smallint,
    segment text,
    PRIMARY KEY (job_id, subject_id)
);
