-- Every applying command leaves a row, also when it sends nothing: held (a threshold, protected
-- persons), stopped (an input or target guard, a lost state, a source or target down), declined
-- at the prompt, nothing to do; a daemon's plan-only run leaves one too ('planned'). `counts`
-- holds the plan's operations per action, what was sent (ok, failed, not sent) and a held run's
-- threshold hits, as JSON. Whether the state has ever applied is read from runs that may have
-- sent something only (see StateStore::has_applied).
ALTER TABLE runs ADD COLUMN counts TEXT;
