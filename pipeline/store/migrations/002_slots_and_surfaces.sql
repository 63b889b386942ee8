-- Typed slots and one candidate state; the run's channel and evaluator note on the run;
-- the untyped run_refs table replaced by the Slack surface's own message table.

CREATE TABLE candidates_new (
    run_id TEXT NOT NULL REFERENCES runs(id),
    slot TEXT NOT NULL,                  -- c1..cN sweep candidates, final = the final run
    job_id TEXT NOT NULL UNIQUE,         -- derived and recorded before the create call
    base_model TEXT NOT NULL,
    lora_rank INTEGER NOT NULL,
    learning_rate REAL NOT NULL,
    epochs INTEGER NOT NULL,
    train_samples INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'waiting',  -- waiting | submitting | pending | running | completed | failed | cancelled
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
    PRIMARY KEY (run_id, slot)
);
INSERT INTO candidates_new
    SELECT run_id, CASE WHEN idx = 0 THEN 'final' ELSE 'c' || idx END, job_id, base_model, lora_rank, learning_rate,
           epochs, train_samples,
           CASE submit_state WHEN 'planned' THEN 'waiting' WHEN 'submitting' THEN 'submitting' ELSE state END,
           raw_state, progress, epoch, train_loss, val_loss, score, cost_usd, message, model, stalled,
           last_progress_at, updated_at
    FROM candidates;
DROP TABLE candidates;
ALTER TABLE candidates_new RENAME TO candidates;

ALTER TABLE runs ADD COLUMN channel TEXT;          -- where the run was asked for (Slack channel id); NULL: terminal
ALTER TABLE runs ADD COLUMN promoted TEXT;         -- the promoted slot (c1..cN)
ALTER TABLE runs ADD COLUMN evaluator_error TEXT;  -- the evaluator failed after approval: ranked by loss instead
UPDATE runs SET promoted = 'c' || winner WHERE winner IS NOT NULL AND winner > 0;
UPDATE runs SET channel = (SELECT value FROM run_refs r WHERE r.run_id = runs.id AND r.key = 'slack:channel');
UPDATE runs SET evaluator_error = (SELECT value FROM run_refs r WHERE r.run_id = runs.id AND r.key = 'evaluator_error');
ALTER TABLE runs DROP COLUMN winner;

-- The run's Slack messages and uploads, by a typed key (handlers/messages.py): posted once,
-- edited in place afterwards, also after a restart.
CREATE TABLE slack_messages (
    run_id TEXT NOT NULL REFERENCES runs(id),
    key TEXT NOT NULL,                   -- root, plan:v2, input:1, scoreboard, promotion, final, upload:<name>, ...
    channel TEXT NOT NULL,
    ts TEXT NOT NULL DEFAULT '',         -- the message ts ('' for an upload)
    file_id TEXT NOT NULL DEFAULT '',
    meta_json TEXT NOT NULL DEFAULT '{}',
    open INTEGER NOT NULL DEFAULT 0,     -- a gate message whose buttons still wait for a stamp
    digest TEXT NOT NULL DEFAULT '',     -- what was last sent: an unchanged message is not sent again
    PRIMARY KEY (run_id, key)
);
INSERT INTO slack_messages(run_id, key, channel, ts)
    SELECT r.run_id, 'root', c.value, r.value FROM run_refs r JOIN run_refs c ON c.run_id = r.run_id AND c.key = 'slack:channel'
    WHERE r.key = 'slack:root_ts';
INSERT INTO slack_messages(run_id, key, channel, ts)
    SELECT r.run_id, substr(r.key, 7), c.value, r.value FROM run_refs r JOIN run_refs c ON c.run_id = r.run_id AND c.key = 'slack:channel'
    WHERE r.key LIKE 'slack:%' AND r.key NOT IN ('slack:channel', 'slack:root_ts', 'slack:open_gates', 'slack:evaluation')
      AND r.key NOT LIKE 'slack:evaluator_request:%';
INSERT INTO slack_messages(run_id, key, channel, file_id)
    SELECT r.run_id, r.key, c.value, r.value FROM run_refs r JOIN run_refs c ON c.run_id = r.run_id AND c.key = 'slack:channel'
    WHERE r.key LIKE 'upload:%';
UPDATE slack_messages SET open = 1
    WHERE EXISTS (SELECT 1 FROM run_refs r WHERE r.run_id = slack_messages.run_id AND r.key = 'slack:open_gates'
                  AND (',' || r.value || ',') LIKE ('%,' || slack_messages.key || ',%'));
DROP TABLE run_refs
