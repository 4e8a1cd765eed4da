-- Events in commit order: a rowid table appended at its end, the per-key lookups in an index.
--
-- Keyed by (namespace, key, revision) as in 0001, each key's events cluster together, so a
-- batch of writes to N keys that already have history dirties N different leaf pages of
-- values, each written whole (4 KiB) to the WAL at COMMIT and again at the checkpoint, for a
-- 200-byte value. Appended, the values of one batch share a few pages, and only the small
-- index entries scatter. The queries are unchanged: "the event of key K at or before R" is one
-- seek on events_by_key (then one on the row for its value).

CREATE TABLE events_appended (
    namespace        TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    revision         INTEGER NOT NULL,
    op               INTEGER NOT NULL CHECK (op IN (1, 2)),
    value            BLOB,
    created_revision INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    at               INTEGER NOT NULL
);

INSERT INTO events_appended
    (namespace, key, revision, op, value, created_revision, created_at, at)
SELECT namespace, key, revision, op, value, created_revision, created_at, at
FROM events ORDER BY namespace, revision, key;

DROP TABLE events;

ALTER TABLE events_appended RENAME TO events;

-- The former primary key: unique, and every per-key read seeks it.
CREATE UNIQUE INDEX events_by_key ON events (namespace, key, revision);
-- "Which keys changed after revision R" (rollback, compaction).
CREATE INDEX events_by_revision ON events (namespace, revision, key);
