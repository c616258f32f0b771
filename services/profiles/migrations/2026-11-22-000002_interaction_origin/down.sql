ALTER TABLE interactions DROP CONSTRAINT interactions_origin_event_id_key;
ALTER TABLE interactions ADD CONSTRAINT interactions_event_id_key UNIQUE (event_id);
ALTER TABLE interactions DROP COLUMN origin;
