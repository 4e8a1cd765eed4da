-- Per-token limits (issue 10, item 6): the daily write quota and the storage quota also hold
-- per token, across all its namespaces.
--
-- current.token_id: the id of the token that last wrote the value (NULL: written without a
-- token, by the operator's admin token, restored from an export, or before this migration);
-- its bytes (key + value) count against that token until a set by another token, a delete
-- or an expiry. A nullable column keeps the table as it is (no rebuild).
ALTER TABLE current ADD COLUMN token_id TEXT;

-- One row per token that has written: writes on UTC day quota_day (day number, like
-- namespaces.quota_day) and the live bytes of the current values it owns. Written in the
-- transaction of each commit, by base.plan_commit's rules.
CREATE TABLE token_usage (
    token_id    TEXT    PRIMARY KEY,
    quota_day   INTEGER NOT NULL DEFAULT -1,
    writes      INTEGER NOT NULL DEFAULT 0,
    live_bytes  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
