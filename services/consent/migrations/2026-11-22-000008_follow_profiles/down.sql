DROP TABLE purchases;
DROP TABLE subject_merges;
DROP TABLE feed_cursors;
