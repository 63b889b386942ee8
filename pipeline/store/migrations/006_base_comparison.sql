-- The base model on the same held-out prompts as the tuned ones: its mean evaluator score (a
-- failed answer counts 0, as for candidates), its loss where the platform can compute it, and
-- why a number is missing. One row per base model of a run, written once: a restart never
-- pays for the base's answers twice. Its answers and per-example scores are in eval/base-<n>.json.
CREATE TABLE base_scores (
    run_id TEXT NOT NULL REFERENCES runs(id),
    base_model TEXT NOT NULL,
    score REAL,
    val_loss REAL,
    answered INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    scored_at REAL NOT NULL,
    PRIMARY KEY (run_id, base_model)
);
