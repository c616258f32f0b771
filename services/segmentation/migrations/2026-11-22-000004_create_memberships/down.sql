DROP TABLE membership_events;
DROP TABLE membership_checks;
DROP TABLE memberships;
ALTER TABLE segments DROP COLUMN populated_at, DROP COLUMN sweep_after, DROP COLUMN sweeping;
