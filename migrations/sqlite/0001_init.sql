-- The event log, its per-revision commit times, and the materialised current values.
-- Times are integer microseconds since the Unix epoch (UTC).

CREATE TABLE namespaces (
    name               TEXT    PRIMARY KEY,
    revision           INTEGER NOT NULL DEFAULT 0,  -- head: the last committed revision
    oldest_revision    INTEGER NOT NULL DEFAULT 0,  -- compaction floor: reads below it are refused
    live_keys          INTEGER NOT NULL DEFAULT 0,
    live_bytes         INTEGER NOT NULL DEFAULT 0,  -- sum of len(key) + len(value) over current
    last_at            INTEGER NOT NULL DEFAULT 0,  -- time of the head revision
    quota_day          INTEGER NOT NULL DEFAULT -1, -- UTC day number of quota_used
    quota_used         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- One row per committed revision: gap-free, unique per namespace; answers "revision at time T".
CREATE TABLE revisions (
    namespace  TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (namespace, revision)
) WITHOUT ROWID;
CREATE INDEX revisions_by_time ON revisions (namespace, at);

-- The append-only log. op: 1 = set, 2 = delete (value NULL).
-- The primary key makes "the event of key K at or before revision R" one index seek.
CREATE TABLE events (
    namespace        TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    revision         INTEGER NOT NULL,
    op               INTEGER NOT NULL CHECK (op IN (1, 2)),
    value            BLOB,
    created_revision INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    PRIMARY KEY (namespace, key, revision)
) WITHOUT ROWID;
-- "Which keys changed after revision R" (rollback, compaction).
CREATE INDEX events_by_revision ON events (namespace, revision, key);

CREATE TABLE current (
    namespace        TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    value            BLOB    NOT NULL,
    version          INTEGER NOT NULL,
    created_revision INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
