DROP TABLE request_tasks;
