-- Messages: one row per message to one subject on one channel, which is at once the queue
-- (status queued or deferred, due_at), the log (status, reason) and the guarantee against
-- sending twice: unique per (campaign or idempotency key, subject, channel).
CREATE TABLE messages (
    message_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    campaign_id uuid,
    idempotency_key text,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    purpose_key text NOT NULL,
    marketing boolean NOT NULL,
    template_key text NOT NULL,
    -- The locale asked for; NULL: the recipient's.
    locale text,
    variables jsonb NOT NULL,
    status text NOT NULL
        CHECK (status IN ('queued', 'deferred', 'sending', 'sent', 'blocked', 'failed', 'cancelled')),
    reason text,
    detail text NOT NULL DEFAULT '',
    attempts integer NOT NULL DEFAULT 0,
    -- When a worker may take it next.
    due_at timestamptz NOT NULL,
    -- The worker holding it, until when: a worker that dies lets its claim lapse.
    claimed_by uuid,
    claimed_until timestamptz,
    rendered_locale text,
    template_version integer,
    provider_id text,
    requested_by text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    sent_at timestamptz,
    CHECK ((campaign_id IS NULL) <> (idempotency_key IS NULL))
);

CREATE UNIQUE INDEX messages_once_per_key ON messages (idempotency_key, subject_id, channel)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX messages_once_per_campaign ON messages (campaign_id, subject_id, channel)
    WHERE campaign_id IS NOT NULL;
-- The queue: what is waiting, by when it is due.
CREATE INDEX messages_due ON messages (due_at) WHERE status IN ('queued', 'deferred', 'sending');
CREATE INDEX messages_by_subject ON messages (subject_id, message_id DESC);
-- The frequency cap: a subject's recent marketing sends.
CREATE INDEX messages_marketing_sent ON messages (subject_id, sent_at) WHERE marketing AND status = 'sent';

-- A channel whose provider asked to slow down, until when.
CREATE TABLE channel_pauses (
    channel text PRIMARY KEY CHECK (channel IN ('email', 'sms', 'webhook')),
    paused_until timestamptz NOT NULL,
    detail text NOT NULL
);
