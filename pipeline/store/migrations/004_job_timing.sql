-- When each training job started running and when it finished, so every surface can show
-- elapsed and remaining time, and the report can set the actual duration beside the estimate.
ALTER TABLE candidates ADD COLUMN started_at REAL;
ALTER TABLE candidates ADD COLUMN finished_at REAL;
