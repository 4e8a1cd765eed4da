"""The SQL of the PostgreSQL store (``postgres.py``), kept apart so the store reads as logic.

Every statement is parameterised; asyncpg prepares and caches each one per connection.
"""

LOCK_HEAD = """
SELECT revision, oldest_revision, live_keys, live_bytes, last_at, quota_day, quota_used
FROM namespaces WHERE name = $1 FOR UPDATE
"""
CURRENT = """
SELECT key, value, version, created_revision, created_at, updated_at
FROM current WHERE namespace = $1 AND key = $2
"""
# Present values of several keys (a group of concurrent gets), in one statement; ``i`` is the
# 1-based position of the key in the arrays. Keys that do not exist return no row.
CURRENT_MANY = """
SELECT k.i, c.key, c.value, c.version, c.created_revision, c.created_at, c.updated_at
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(namespace, key, i)
JOIN current c ON c.namespace = k.namespace AND c.key = k.key
"""
# A group of sets and deletes to one namespace, locked, checked and written in one call (one
# round trip); one result row per write, in order. See migrations/postgres/0002_write_function.sql.
WRITE = "SELECT * FROM botwire_write($1, $2, $3, $4, $5::smallint[], $6, $7, $8, $9)"
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
# A point in time resolved in one statement (one snapshot): the namespace's head and compaction
# floor, and the revision meant: $2 when given, else the last revision committed at or before
# time $3. The caller checks the revision against the head and floor.
_RESOLVED_CTES = """
h AS (
    SELECT coalesce(max(revision), 0) AS head, coalesce(max(oldest_revision), 0) AS oldest
    FROM namespaces WHERE name = $1
), r AS (
    SELECT coalesce($2::bigint, (
        SELECT revision FROM revisions WHERE namespace = $1 AND at <= $3::bigint
        ORDER BY at DESC, revision DESC LIMIT 1), 0) AS rev
)"""
RESOLVE = "WITH" + _RESOLVED_CTES + " SELECT h.head, h.oldest, r.rev FROM h CROSS JOIN r"
# One key as of a revision or a time, with the resolution above, in one round trip.
GET_AT = (
    "WITH"
    + _RESOLVED_CTES
    + """
SELECT h.head, h.oldest, r.rev, e.op, e.value, e.version, e.created_revision, e.created_at,
       e.updated_at
FROM h CROSS JOIN r
LEFT JOIN LATERAL (
    SELECT op, value, revision AS version, created_revision, created_at, at AS updated_at
    FROM events WHERE namespace = $1 AND key = $4 AND revision <= r.rev
    ORDER BY revision DESC LIMIT 1
) e ON true
"""
)
REVISION_AT = """
SELECT revision FROM revisions WHERE namespace = $1 AND at <= $2
ORDER BY at DESC, revision DESC LIMIT 1
"""
# The keys present at the resolved revision (see _RESOLVED_CTES: $2 or the time $3), in key
# order, after $4, starting with $5 ('' = any), at most $6, in one statement: one row with the
# resolution (part 0), then the items (part 1). A recursive CTE steps from one key to the next
# with one index seek (PostgreSQL has no skip scan of its own), and the LATERAL join seeks each
# key's last event at or before the revision, so a page costs about two seeks per key visited,
# whatever the length of the history. The CTE is evaluated lazily as the LIMIT pulls rows, in
# key order, so the walk stops with the page.
LIST_AT = (
    "WITH RECURSIVE"
    + _RESOLVED_CTES
    + """, keys(key) AS (
    (SELECT key FROM events
     WHERE namespace = $1 AND key > $4 AND key >= $5
     ORDER BY key LIMIT 1)
    UNION ALL
    SELECT (SELECT e.key FROM events e
            WHERE e.namespace = $1 AND e.key > keys.key
            ORDER BY e.key LIMIT 1)
    FROM keys WHERE keys.key IS NOT NULL AND starts_with(keys.key, $5)
)
SELECT 0 AS part, h.head, h.oldest, r.rev, NULL::text AS key, NULL::bytea AS value,
       NULL::bigint AS version, NULL::bigint AS created_revision, NULL::bigint AS created_at,
       NULL::bigint AS updated_at
FROM h CROSS JOIN r
UNION ALL
(SELECT 1, NULL, NULL, NULL, k.key, t.value, t.revision, t.created_revision, t.created_at, t.at
FROM keys k
CROSS JOIN LATERAL (
    SELECT op, value, revision, created_revision, created_at, at FROM events e
    WHERE e.namespace = $1 AND e.key = k.key AND e.revision <= (SELECT rev FROM r)
    ORDER BY e.revision DESC LIMIT 1
) t
WHERE k.key IS NOT NULL AND starts_with(k.key, $5) AND t.op = 1
LIMIT $6)
"""
)
