-- Provenance as a type (#23): the states are an enum moved through one guarded function
-- (pipeline/domain/provenance.py), an error is text beside the state, and money is in typed
-- columns instead of the details JSON. Existing rows are converted, nothing is dropped.
ALTER TABLE resources ADD COLUMN error TEXT;
-- A deployment's rate while a replica is up: $/hour, GPUs per replica, the GPU type, and the
-- date of the price table the rate was taken from.
ALTER TABLE resources ADD COLUMN usd_per_hour REAL;
ALTER TABLE resources ADD COLUMN gpu_count INTEGER;
ALTER TABLE resources ADD COLUMN accelerator TEXT;
ALTER TABLE resources ADD COLUMN priced_at TEXT;
-- A job's cost as the platform estimates it (Fireworks `estimatedCost`).
ALTER TABLE resources ADD COLUMN estimated_usd REAL;
-- The idle guard's marks on a deployment (a new idle period; asked; no replica since).
ALTER TABLE resources ADD COLUMN kept_at REAL;
ALTER TABLE resources ADD COLUMN idle_asked_at REAL;
ALTER TABLE resources ADD COLUMN scaled_to_zero_at REAL;

-- The error sentence that was written into the state column: state delete_failed, the sentence
-- after "teardown failed: " (17 characters) in the error column.
UPDATE resources SET error = substr(state, 18), state = 'delete_failed' WHERE state LIKE 'teardown failed: %';
-- A job whose create call was in flight was "submitting"; every kind now says "recorded".
UPDATE resources SET state = 'recorded' WHERE kind = 'job' AND state = 'submitting';

UPDATE resources SET usd_per_hour = json_extract(details_json, '$.usd_per_hour')
    WHERE json_type(details_json, '$.usd_per_hour') IN ('integer', 'real');
UPDATE resources SET kept_at = json_extract(details_json, '$.kept_at')
    WHERE json_type(details_json, '$.kept_at') IN ('integer', 'real');
UPDATE resources SET idle_asked_at = json_extract(details_json, '$.idle_asked_at')
    WHERE json_type(details_json, '$.idle_asked_at') IN ('integer', 'real');
UPDATE resources SET scaled_to_zero_at = json_extract(details_json, '$.scaled_to_zero_at')
    WHERE json_type(details_json, '$.scaled_to_zero_at') IN ('integer', 'real');
UPDATE resources SET details_json = json_remove(details_json, '$.usd_per_hour', '$.kept_at', '$.idle_asked_at', '$.scaled_to_zero_at')
    WHERE json_valid(details_json);
-- A job's estimate was only on its candidate row.
UPDATE resources SET estimated_usd = (
    SELECT c.cost_usd FROM candidates c WHERE c.run_id = resources.run_id AND c.job_id = resources.resource_id
) WHERE kind = 'job';

-- Platforms by role (#23): whether a run's platform bills money is a fact the platform declares,
-- stored with the run and its plans so every surface asks it instead of comparing names. Before,
-- a run was free exactly when its platform was the local one.
ALTER TABLE runs ADD COLUMN billed INTEGER NOT NULL DEFAULT 1;
UPDATE runs SET billed = 0 WHERE platform = 'local';
UPDATE plan_versions SET plan_json = json_set(
    plan_json, '$.billed', json(CASE WHEN json_extract(plan_json, '$.platform') = 'local' THEN 'false' ELSE 'true' END)
) WHERE json_valid(plan_json);
