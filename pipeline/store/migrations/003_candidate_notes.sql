-- What a person should know about a job beyond its state (shown on the scoreboard and in the
-- report): "waiting for quota (2 running)", "no validation loss recognised (keys seen: ...)";
-- and how many of its held-out answers failed (each counted as score 0 by the evaluator).
ALTER TABLE candidates ADD COLUMN note TEXT;
ALTER TABLE candidates ADD COLUMN eval_failures INTEGER NOT NULL DEFAULT 0;
