-- Retention (`[state] keep_log_for`) removes old runs, so the facts the guards decide with can no
-- longer be read from the runs table: whether the state ever applied (the lost-state guard) and
-- whether an adopt finished (a recovered state). They live in `meta`, written by the run that
-- makes them true; a state that already has them gets them here, dated by its first such run.
INSERT OR IGNORE INTO meta (key, value)
    SELECT 'first_apply', started_at FROM runs WHERE command = 'apply' ORDER BY id LIMIT 1;
INSERT OR IGNORE INTO meta (key, value)
    SELECT 'first_adopt', started_at FROM runs WHERE command = 'adopt' AND status = 'ok' ORDER BY id LIMIT 1;
