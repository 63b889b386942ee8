-- The money guard (#14).
-- approved_usd: what people approved for this run: the plan's estimate at approval, raised
-- by every "approve $X more" at a budget gate. The run's cap is approved_usd x the margin.
ALTER TABLE runs ADD COLUMN approved_usd REAL;
-- The open budget request (JSON, like question_json): which paid step waits and the numbers.
ALTER TABLE runs ADD COLUMN budget_json TEXT;
-- Estimate vs actual per finished run and phase, with the platform and the size band: the
-- next plan's range is made from the last few of the same kind (pipeline/planning/history.py).
CREATE TABLE spend_outcomes (
    run_id TEXT NOT NULL REFERENCES runs(id),
    platform TEXT NOT NULL,
    band TEXT NOT NULL,
    phase TEXT NOT NULL,
    estimated_usd REAL NOT NULL,
    actual_usd REAL NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, phase)
);
CREATE INDEX spend_outcomes_kind ON spend_outcomes (platform, band, phase, at);
