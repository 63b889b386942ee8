-- Runs and everything decided about them. Times are unix seconds (REAL).
CREATE TABLE runs (
    id TEXT PRIMARY KEY,                 -- short random hex; resource ids derive from it
    number INTEGER NOT NULL UNIQUE,      -- what people say: "run 12"
    requester TEXT NOT NULL,
    requester_name TEXT NOT NULL DEFAULT '',
    instruction TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    platform TEXT NOT NULL,
    phase TEXT NOT NULL,
    plan_version INTEGER NOT NULL DEFAULT 0,
    question_json TEXT,
    winner INTEGER,
    error TEXT,
    workspace TEXT NOT NULL,
    estimated_usd REAL,
    actual_usd REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX runs_phase ON runs(phase);

CREATE TABLE plan_versions (
    run_id TEXT NOT NULL REFERENCES runs(id),
    version INTEGER NOT NULL,
    plan_json TEXT NOT NULL,
    status TEXT NOT NULL,                -- proposed | approved | superseded | cancelled
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, version)
);

CREATE TABLE candidates (
    run_id TEXT NOT NULL REFERENCES runs(id),
    idx INTEGER NOT NULL,                -- 1..n sweep candidates, 0 = the final run
    job_id TEXT NOT NULL UNIQUE,         -- derived and recorded before the create call
    base_model TEXT NOT NULL,
    lora_rank INTEGER NOT NULL,
    learning_rate REAL NOT NULL,
    epochs INTEGER NOT NULL,
    train_samples INTEGER NOT NULL,
    submit_state TEXT NOT NULL DEFAULT 'planned',  -- planned | submitting | submitted
    state TEXT NOT NULL DEFAULT 'pending',
    raw_state TEXT NOT NULL DEFAULT '',
    progress REAL NOT NULL DEFAULT 0,
    epoch REAL,
    train_loss REAL,
    val_loss REAL,
    score REAL,
    cost_usd REAL,
    message TEXT,
    model TEXT,
    stalled INTEGER NOT NULL DEFAULT 0,
    last_progress_at REAL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, idx)
);

CREATE TABLE gate_decisions (
    run_id TEXT NOT NULL REFERENCES runs(id),
    gate TEXT NOT NULL,                  -- "input:<n>", "plan:v<n>", "promotion"
    decision TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_name TEXT NOT NULL DEFAULT '',
    plan_version INTEGER,
    details_json TEXT NOT NULL DEFAULT '{}',
    decided_at REAL NOT NULL,
    PRIMARY KEY (run_id, gate)           -- a gate is decided once
);

CREATE TABLE resources (
    kind TEXT NOT NULL,                  -- dataset | job | model | deployment
    resource_id TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'recorded',
    details_json TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (kind, resource_id)
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    actor_name TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    plan_version INTEGER,
    details_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_run ON audit_events(run_id, id);

-- Slack delivers events at least once; a key seen here is never processed again.
CREATE TABLE processed_events (
    event_key TEXT PRIMARY KEY,
    run_id TEXT,
    at REAL NOT NULL
);

-- Surface-specific references (e.g. a run's Slack channel and root message ts).
CREATE TABLE run_refs (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
