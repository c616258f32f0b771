-- Contract step of 000002: no code names the global unique `event_id` any more (inserts skip
-- any duplicate), so event ids are unique per origin only.
ALTER TABLE interactions DROP CONSTRAINT interactions_event_id_key;

-- Notices to the recipients of a subject's data of its erasure, restriction or rectification
-- (GDPR Art. 19), kept as the record that they were told. Partners pull them until they
-- acknowledge them. They name the subject by id only, so they outlive its erasure.
CREATE TABLE recipient_notices (
    id uuid PRIMARY KEY,
    partner_id text NOT NULL,
    subject_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('erased', 'restricted', 'restriction_lifted', 'rectified')),
    fields text[] NOT NULL DEFAULT '{}',
    -- The data subject request that caused it: one notice per request, kind and partner.
    request_id uuid NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    UNIQUE (partner_id, request_id, kind)
);
CREATE INDEX recipient_notices_pending ON recipient_notices (partner_id, issued_at, id)
    WHERE acknowledged_at IS NULL;
CREATE INDEX recipient_notices_subject ON recipient_notices (subject_id);
