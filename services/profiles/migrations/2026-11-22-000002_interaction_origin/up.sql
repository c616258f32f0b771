-- Who recorded an interaction: '' for the organisation's own channels, else the partner's id.
-- Event ids are unique per origin, so a partner's ids never collide with, or shadow, another
-- source's; a partner lists only the interactions it recorded.
ALTER TABLE interactions ADD COLUMN origin text NOT NULL DEFAULT '';
ALTER TABLE interactions DROP CONSTRAINT interactions_event_id_key;
ALTER TABLE interactions ADD CONSTRAINT interactions_origin_event_id_key UNIQUE (origin, event_id);
