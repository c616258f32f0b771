ALTER TABLE requests DROP COLUMN verification_message_id;
ALTER TABLE requests DROP COLUMN verification_error;
ALTER TABLE requests DROP COLUMN verification_sent_at;
ALTER TABLE requests DROP COLUMN verification_codes_sent;
ALTER TABLE requests DROP COLUMN verification_failed_attempts;
ALTER TABLE requests DROP COLUMN verification_code_expires_at;
ALTER TABLE requests DROP COLUMN verification_code_mac;
ALTER TABLE requests DROP COLUMN verification_code_salt;
