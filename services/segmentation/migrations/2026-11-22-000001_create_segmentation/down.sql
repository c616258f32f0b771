DROP TABLE erasures;
DROP TABLE daily_visits;
DROP TABLE orders;
DROP TABLE customers;
DROP TABLE feed_cursors;
