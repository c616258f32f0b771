-- One-click unsubscribes (RFC 8058): each click kept here first, so no marketing message for
-- the purpose goes to the subject while the withdrawal is not yet in consent's ledger, then
-- forwarded there. `forwarded_at` is set once consent recorded it; `refused_at` when consent
-- refused it (retrying cannot help; the row keeps blocking sends).
CREATE TABLE unsubscribes (
    unsubscribe_id uuid PRIMARY KEY,
    subject_id uuid NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    purpose_key text NOT NULL CHECK (purpose_key ~ '^[a-z][a-z0-9_.:-]{0,79}$'),
    requested_at timestamptz NOT NULL DEFAULT now(),
    -- SHA-256 (lower-case hex) of the requester's IP address; never the address itself.
    ip_hash text CHECK (ip_hash ~ '^[0-9a-f]{64}$'),
    user_agent text CHECK (char_length(user_agent) <= 256),
    forwarded_at timestamptz,
    refused_at timestamptz,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error text,
    -- When the forwarder may try again; also the lease of the one trying now.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    CHECK (forwarded_at IS NULL OR refused_at IS NULL)
);

-- At most one withdrawal waiting per subject, channel and purpose: clicking again while it
-- waits adds nothing.
CREATE UNIQUE INDEX unsubscribes_waiting_key ON unsubscribes (subject_id, channel, purpose_key)
    WHERE forwarded_at IS NULL AND refused_at IS NULL;

-- What the send path asks: the subjects of a purpose whose withdrawal consent does not hold.
CREATE INDEX unsubscribes_unforwarded ON unsubscribes (purpose_key, subject_id)
    WHERE forwarded_at IS NULL;

-- What the forwarder claims.
CREATE INDEX unsubscribes_due ON unsubscribes (next_attempt_at)
    WHERE forwarded_at IS NULL AND refused_at IS NULL;
