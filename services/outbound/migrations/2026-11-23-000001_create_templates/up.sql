-- Message templates: what a message says, per key, channel and locale. Saving changed content
-- bumps the version; messages record the version they were rendered from.
CREATE TABLE templates (
    key text NOT NULL CHECK (key ~ '^[a-z0-9_.-]{1,64}$'),
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    locale text NOT NULL CHECK (locale ~ '^[A-Za-z]{2}[A-Za-z0-9-]{0,33}$'),
    subject text NOT NULL,
    body text NOT NULL,
    variables text[] NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, channel, locale)
);
