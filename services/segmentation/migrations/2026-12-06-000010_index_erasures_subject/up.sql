-- The projection looks up, for each batch of the profiles feed, which of its subjects were
-- erased here.
CREATE INDEX erasures_subject ON erasures (subject_id);
