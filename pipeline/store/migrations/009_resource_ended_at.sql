-- When a resource stopped billing (#20): set once, by the move that first takes it out of
-- service (deleting, deleted, failed, cancelled, pruned, completed), and never moved by later
-- reads or marks, so a delete read back later (a 404) still ends the bill at the delete time.
ALTER TABLE resources ADD COLUMN ended_at REAL;
UPDATE resources SET ended_at = updated_at
    WHERE state IN ('deleting', 'deleted', 'failed', 'cancelled', 'pruned', 'completed');
