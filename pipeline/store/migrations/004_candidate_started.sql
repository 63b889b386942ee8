-- When each training job first ran: elapsed and remaining time on the scoreboard and the
-- root message come from it (queue time before it is not training time).
ALTER TABLE candidates ADD COLUMN started_at REAL;
