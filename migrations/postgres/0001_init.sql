-- The event log, its per-revision commit times, and the materialised current values.
-- Mirrors migrations/sqlite/0001_init.sql. Times are bigint microseconds since the Unix epoch
-- (UTC). Values are bytea: the exact JSON bytes a client stored, never re-encoded by a jsonb
-- codec. Names use the "C" collation so that key order is code point order, as on SQLite and in
-- the reference store, whatever the database's default collation is.

CREATE TABLE namespaces (
    name               text   COLLATE "C" PRIMARY KEY,
    revision           bigint NOT NULL DEFAULT 0,  -- head: the last committed revision
    oldest_revision    bigint NOT NULL DEFAULT 0,  -- compaction floor: reads below it are refused
    live_keys          bigint NOT NULL DEFAULT 0,
    live_bytes         bigint NOT NULL DEFAULT 0,  -- sum of len(key) + len(value) over current
    last_at            bigint NOT NULL DEFAULT 0,  -- time of the head revision
    quota_day          bigint NOT NULL DEFAULT -1, -- UTC day number of quota_used
    quota_used         bigint NOT NULL DEFAULT 0
);

-- One row per committed revision: gap-free, unique per namespace; answers "revision at time T".
CREATE TABLE revisions (
    namespace  text   COLLATE "C" NOT NULL,
    revision   bigint NOT NULL,
    at         bigint NOT NULL,
    PRIMARY KEY (namespace, revision)
);
-- (namespace, at, revision): "the last revision at or before T" is one backward index seek.
CREATE INDEX revisions_by_time ON revisions (namespace, at, revision);

-- The append-only log. op: 1 = set, 2 = delete (value NULL).
-- The primary key makes "the event of key K at or before revision R" one index seek.
CREATE TABLE events (
    namespace        text     COLLATE "C" NOT NULL,
    key              text     COLLATE "C" NOT NULL,
    revision         bigint   NOT NULL,
    op               smallint NOT NULL CHECK (op IN (1, 2)),
    value            bytea,
    created_revision bigint   NOT NULL,
    created_at       bigint   NOT NULL,
    at               bigint   NOT NULL,
    PRIMARY KEY (namespace, key, revision)
);
-- "Which keys changed after revision R" (rollback, compaction).
CREATE INDEX events_by_revision ON events (namespace, revision, key);

CREATE TABLE current (
    namespace        text   COLLATE "C" NOT NULL,
    key              text   COLLATE "C" NOT NULL,
    value            bytea  NOT NULL,
    version          bigint NOT NULL,
    created_revision bigint NOT NULL,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    PRIMARY KEY (namespace, key)
);
