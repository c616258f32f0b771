DROP TABLE erasures;
DROP TABLE restrictions;
