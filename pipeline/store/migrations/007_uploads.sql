-- Files people attached in Slack and the bot saved in its uploads folder: where each was given
-- and by whom (a dataset is usable only by runs of that conversation), how big it is (per-user
-- and total quotas) and when a run last named it (unused ones are deleted after a while).
CREATE TABLE uploads (
    name TEXT PRIMARY KEY,               -- the saved file in the uploads folder; runs name it upload:<name>
    channel TEXT NOT NULL,               -- the conversation it was attached in (a DM's id for a DM)
    uploader TEXT NOT NULL,
    bytes INTEGER NOT NULL,              -- what Slack said before the download, then what came
    created_at REAL NOT NULL,
    used_at REAL NOT NULL                -- when it was saved or a run last named it
);
CREATE INDEX uploads_uploader ON uploads(uploader);
