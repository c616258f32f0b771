-- The W3C traceparent of the call that created a request task (its approval), so the worker
-- carrying the task out later, after a restart or on another replica, continues that trace.
ALTER TABLE request_tasks ADD COLUMN traceparent text;
