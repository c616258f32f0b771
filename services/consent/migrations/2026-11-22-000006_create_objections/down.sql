DROP TABLE objections;
ALTER TABLE purposes DROP COLUMN direct_marketing;
