ALTER TABLE request_tasks DROP COLUMN corrected_fields;
ALTER TABLE request_tasks DROP COLUMN notified_recipients;
ALTER TABLE request_tasks DROP CONSTRAINT request_tasks_state_check;
ALTER TABLE request_tasks ADD CONSTRAINT request_tasks_state_check CHECK (state IN ('pending',
    'done'));
ALTER TABLE request_tasks DROP CONSTRAINT request_tasks_action_check;
ALTER TABLE request_tasks ADD CONSTRAINT request_tasks_action_check CHECK (action IN ('export',
    'erase', 'verify_erased', 'restrict', 'lift_restriction'));
ALTER TABLE requests DROP COLUMN corrected_fields;
ALTER TABLE requests DROP COLUMN sealed_corrections;
