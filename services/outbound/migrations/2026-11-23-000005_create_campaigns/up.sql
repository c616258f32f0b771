-- Campaigns: one template to many subjects. A started campaign's messages are rows of
-- `messages`, one per recipient, so the queue, the gate and the log are the same as for a
-- single message.
CREATE TABLE campaigns (
    campaign_id uuid PRIMARY KEY,
    name text NOT NULL,
    -- The segmentation segment read when the campaign starts; NULL: the explicit list.
    segment text,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    template_key text NOT NULL,
    locale text,
    variables jsonb NOT NULL,
    purpose_key text NOT NULL,
    marketing boolean NOT NULL,
    scheduled_at timestamptz,
    -- NULL: as fast as the channels take them.
    per_second integer CHECK (per_second > 0),
    state text NOT NULL
        CHECK (state IN ('draft', 'running', 'paused', 'cancelled', 'completed')),
    recipients integer NOT NULL DEFAULT 0,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz
);

-- A draft campaign's explicit list, and a started campaign's audience as it was read.
CREATE TABLE campaign_recipients (
    campaign_id uuid NOT NULL REFERENCES campaigns ON DELETE CASCADE,
    subject_id uuid NOT NULL,
    PRIMARY KEY (campaign_id, subject_id)
);
CREATE INDEX campaign_recipients_by_subject ON campaign_recipients (subject_id);

ALTER TABLE messages ADD CONSTRAINT messages_campaign_fk
    FOREIGN KEY (campaign_id) REFERENCES campaigns;
-- A campaign's messages by status, for its statistics and for pausing and cancelling.
CREATE INDEX messages_by_campaign ON messages (campaign_id, status) WHERE campaign_id IS NOT NULL;
