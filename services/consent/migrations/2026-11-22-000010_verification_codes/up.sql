-- The requester's verification by a code sent to the address on file: only the code's HMAC
-- (under a key derived from the master key, over a random salt, the request and the code) is
-- kept, with its expiry and the wrong attempts against it; and what came of sending it.
ALTER TABLE requests ADD COLUMN verification_code_salt bytea;
ALTER TABLE requests ADD COLUMN verification_code_mac bytea;
ALTER TABLE requests ADD COLUMN verification_code_expires_at timestamptz;
ALTER TABLE requests ADD COLUMN verification_failed_attempts integer NOT NULL DEFAULT 0
    CHECK (verification_failed_attempts >= 0);
ALTER TABLE requests ADD COLUMN verification_codes_sent integer NOT NULL DEFAULT 0
    CHECK (verification_codes_sent >= 0);
ALTER TABLE requests ADD COLUMN verification_sent_at timestamptz;
ALTER TABLE requests ADD COLUMN verification_error text;
ALTER TABLE requests ADD COLUMN verification_message_id text;
