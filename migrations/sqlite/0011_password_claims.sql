-- The hand-out of first passwords in steps: claim, show, confirm, forget. A claimed row is held
-- for one hand-out (`claim_id`, `claimed_at`): another hand-out skips it while the claim lives,
-- the hand-out that claimed it forgets it only once its output was delivered, and gives it back
-- (both NULL again) when the output failed. A claim never confirmed lapses after a few minutes
-- (`engine::passwords::CLAIM_TIMEOUT`) and the row is handed out again. Existing rows are
-- unclaimed: nothing a plan compares changes.
ALTER TABLE passwords ADD COLUMN claim_id TEXT;
ALTER TABLE passwords ADD COLUMN claimed_at TEXT;
CREATE INDEX passwords_claim ON passwords (claim_id);
