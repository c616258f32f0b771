DROP TABLE tier_programs;
