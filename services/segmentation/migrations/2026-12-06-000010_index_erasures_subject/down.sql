DROP INDEX erasures_subject;
