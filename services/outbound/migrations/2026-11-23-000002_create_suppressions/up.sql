-- Addresses never sent to, kept as blind indexes (HMAC of the normalised address) so that a
-- suppression outlives the erasure of the customer it was added for.
CREATE TABLE suppressions (
    id uuid PRIMARY KEY,
    channel text NOT NULL CHECK (channel IN ('email', 'sms')),
    address_index text NOT NULL CHECK (address_index ~ '^[0-9a-f]{64}$'),
    scope text NOT NULL CHECK (scope IN ('all', 'marketing')),
    reason text NOT NULL
        CHECK (reason IN ('bounced', 'complained', 'unsubscribed', 'objected', 'manual')),
    note text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, address_index, scope)
);
