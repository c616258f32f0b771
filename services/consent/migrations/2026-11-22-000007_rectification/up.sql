-- Rectification requests carry their corrections, sealed with the master key (they are
-- personal data) until carried out; the field names stay.
ALTER TABLE requests ADD COLUMN sealed_corrections bytea;
ALTER TABLE requests ADD COLUMN corrected_fields text[] NOT NULL DEFAULT '{}';

-- Tasks: "rectify" at each service; "failed" when a service refused a task, which is then not
-- retried; and what each service reported beyond its sealed result (no personal data): the
-- recipients it told (Art. 19) and the fields it corrected.
ALTER TABLE request_tasks DROP CONSTRAINT request_tasks_action_check;
ALTER TABLE request_tasks ADD CONSTRAINT request_tasks_action_check CHECK (action IN ('export',
    'erase', 'verify_erased', 'restrict', 'lift_restriction', 'rectify'));
ALTER TABLE request_tasks DROP CONSTRAINT request_tasks_state_check;
ALTER TABLE request_tasks ADD CONSTRAINT request_tasks_state_check CHECK (state IN ('pending',
    'done', 'failed'));
ALTER TABLE request_tasks ADD COLUMN notified_recipients text[] NOT NULL DEFAULT '{}';
ALTER TABLE request_tasks ADD COLUMN corrected_fields text[] NOT NULL DEFAULT '{}';
