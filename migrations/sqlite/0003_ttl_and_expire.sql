-- TTL and expiry: each event and current row may carry expires_at (microseconds; NULL: never),
-- and the log gains the op 3 = expire (a key removed by the sweeper once its TTL passed).
--
-- SQLite cannot change a CHECK constraint in place, so the events table is rebuilt as in 0002,
-- keeping its commit order.

CREATE TABLE events_v3 (
    namespace        TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    revision         INTEGER NOT NULL,
    op               INTEGER NOT NULL CHECK (op IN (1, 2, 3)),
    value            BLOB,
    created_revision INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    expires_at       INTEGER
);

INSERT INTO events_v3 (namespace, key, revision, op, value, created_revision, created_at, at)
SELECT namespace, key, revision, op, value, created_revision, created_at, at
FROM events ORDER BY rowid;

DROP TABLE events;

ALTER TABLE events_v3 RENAME TO events;

CREATE UNIQUE INDEX events_by_key ON events (namespace, key, revision);
-- "Which keys changed after revision R" (rollback, compaction) and the change feed.
CREATE INDEX events_by_revision ON events (namespace, revision, key);

ALTER TABLE current ADD COLUMN expires_at INTEGER;
-- The sweeper's question, "which keys have expired by now", soonest first.
CREATE INDEX current_by_expiry ON current (expires_at) WHERE expires_at IS NOT NULL;
