-- Who recorded an interaction: '' for the organisation's own channels, else the partner's id; a
-- partner lists only the interactions it recorded.
--
-- Expand step: event ids become unique per origin, but the global unique constraint on
-- `event_id` stays until every replica runs code that no longer names it in ON CONFLICT; a
-- later migration drops it. Until then an event id already used by another origin counts as
-- a duplicate.
ALTER TABLE interactions ADD COLUMN origin text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX interactions_origin_event_id ON interactions (origin, event_id);
