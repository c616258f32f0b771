DROP TABLE recipient_notices;
ALTER TABLE interactions ADD CONSTRAINT interactions_event_id_key UNIQUE (event_id);
