"""The SQL of the PostgreSQL store (``postgres.py``), kept apart so the store reads as logic.

Every statement is parameterised; asyncpg prepares and caches each one per connection.
"""

LOCK_HEAD = """
SELECT revision, oldest_revision, live_keys, live_bytes, last_at, quota_day, quota_used
FROM namespaces WHERE name = $1 FOR UPDATE
"""
READ_HEAD = "SELECT revision, oldest_revision FROM namespaces WHERE name = $1"
CURRENT = """
SELECT key, value, version, created_revision, created_at, updated_at
FROM current WHERE namespace = $1 AND key = $2
"""
# Appends one revision: its commit time, one event per key, the materialised current rows and
# the namespace row, in one statement (one round trip) whatever the number of keys.
APPEND = """
WITH r AS (
    INSERT INTO revisions (namespace, revision, at) VALUES ($1, $2, $3)
), ch AS (
    SELECT * FROM unnest($4::text[], $5::smallint[], $6::bytea[], $7::bigint[], $8::bigint[])
        AS t(key, op, value, created_revision, created_at)
), e AS (
    INSERT INTO events (namespace, key, revision, op, value, created_revision, created_at, at)
    SELECT $1, key, $2, op, value, created_revision, created_at, $3 FROM ch
), d AS (
    DELETE FROM current c USING ch
    WHERE ch.op = 2 AND c.namespace = $1 AND c.key = ch.key
), u AS (
    INSERT INTO current (namespace, key, value, version, created_revision, created_at, updated_at)
    SELECT $1, key, value, $2, created_revision, created_at, $3 FROM ch WHERE op = 1
    ON CONFLICT (namespace, key) DO UPDATE SET
        value = EXCLUDED.value, version = EXCLUDED.version,
        created_revision = EXCLUDED.created_revision, created_at = EXCLUDED.created_at,
        updated_at = EXCLUDED.updated_at
)
UPDATE namespaces SET revision = $2, last_at = $3, live_keys = $9, live_bytes = $10,
    quota_day = $11, quota_used = $12
WHERE name = $1
"""
# For each key written after the target revision: its event at the target and its current row.
# Keys not written since cannot differ, so they are never looked at.
ROLLBACK_DIFF = """
WITH changed AS (
    SELECT DISTINCT key FROM events WHERE namespace = $1 AND revision > $2 {key_filter}
)
SELECT ch.key, t.op AS then_op, t.value AS then_value, c.key AS cur_key, c.value,
       c.version, c.created_revision, c.created_at
FROM changed ch
LEFT JOIN LATERAL (
    SELECT op, value FROM events e
    WHERE e.namespace = $1 AND e.key = ch.key AND e.revision <= $2
    ORDER BY e.revision DESC LIMIT 1
) t ON true
LEFT JOIN current c ON c.namespace = $1 AND c.key = ch.key
ORDER BY ch.key
"""
# Per key, the newest event at or before the floor answers reads at the floor: keep it (unless
# it is a tombstone) and everything after it.
COMPACT = """
WITH keep AS (
    SELECT DISTINCT ON (key) key, revision, op FROM events
    WHERE namespace = $1 AND revision <= $2
    ORDER BY key, revision DESC
)
DELETE FROM events e USING keep k
WHERE e.namespace = $1 AND e.key = k.key
  AND (e.revision < k.revision OR (e.revision = k.revision AND k.op = 2))
"""
REVISION_AT = """
SELECT revision FROM revisions WHERE namespace = $1 AND at <= $2
ORDER BY at DESC, revision DESC LIMIT 1
"""
