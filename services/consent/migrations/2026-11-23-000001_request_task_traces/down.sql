ALTER TABLE request_tasks DROP COLUMN traceparent;
