DROP INDEX interactions_origin_event_id;
ALTER TABLE interactions DROP COLUMN origin;
