DROP TABLE rfm_scores;
DROP TABLE rfm_jobs;
