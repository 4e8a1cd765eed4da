"""The SQL of the PostgreSQL store (``postgres.py``), kept apart so the store reads as logic.

Every statement is parameterised; asyncpg prepares and caches each one per connection.
"""

LOCK_HEAD = """
SELECT revision, oldest_revision, live_keys, live_bytes, last_at, quota_day, quota_used
FROM namespaces WHERE name = $1 FOR UPDATE
"""
CURRENT = """
SELECT key, value, version, created_revision, created_at, updated_at, expires_at
FROM current WHERE namespace = $1 AND key = $2
"""
HEAD = "SELECT revision FROM namespaces WHERE name = $1"
# Several keys of one namespace now, with the head, in one statement (one snapshot): one row per
# key, its columns NULL when the key does not exist.
CURRENT_KEYS = """
SELECT (SELECT revision FROM namespaces WHERE name = $1) AS head, c.key, c.value, c.version,
       c.created_revision, c.created_at, c.updated_at, c.expires_at
FROM unnest($2::text[]) AS k(key)
LEFT JOIN current c ON c.namespace = $1 AND c.key = k.key
"""
# Present values of several keys (a group of concurrent gets), in one statement; ``i`` is the
# 1-based position of the key in the arrays. Keys that do not exist return no row.
CURRENT_MANY = """
SELECT k.i, c.key, c.value, c.version, c.created_revision, c.created_at, c.updated_at,
       c.expires_at
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(namespace, key, i)
JOIN current c ON c.namespace = k.namespace AND c.key = k.key
"""
# A group of commits to one namespace, locked, checked and written in one call (one round
# trip); one result row per write, in order. See migrations/postgres/0003_commit_function.sql.
# See migrations/postgres/0003_commit_function.sql, 0005 for the provenance arguments and
# 0006 for the per-token limits.
COMMIT = """
SELECT * FROM botwire_commit($1, $2, $3, $4, $5::integer[], $6::smallint[], $7::text[],
    $8::bytea[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::integer[],
    $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19, $20)
"""
# The provenance columns every event read returns (after its own columns).
PROVENANCE = "actor, run, agent, reason"
# A run's events, oldest first, after the (revision, key) ($3, $4), through events_by_run.
RUN_EVENTS = """
SELECT revision, key, op, value, at, expires_at, actor, run, agent, reason FROM events
WHERE namespace = $1 AND run = $2 AND (revision, key) > ($3, $4)
ORDER BY revision, key LIMIT $5
"""
# For a revert, per key the run wrote: the revision of its first write, whether anyone else
# wrote the key after it (expiries are no writes), its event just before that write, and its
# current row (values NULL where absent, or expired by $3, the revert's commit time).
REVERT_DIFF = """
WITH touched AS (
    SELECT key, min(revision) AS first FROM events
    WHERE namespace = $1 AND run = $2 GROUP BY key
)
SELECT t.key, t.first,
       EXISTS (SELECT 1 FROM events o WHERE o.namespace = $1 AND o.key = t.key
               AND o.revision > t.first AND o.op <> 3 AND o.run IS DISTINCT FROM $2) AS others,
       CASE WHEN b.op = 1 THEN b.value END AS then_value, b.expires_at AS then_expires_at,
       c.version AS cur_version,
       CASE WHEN c.expires_at IS NULL OR c.expires_at > $3 THEN c.value END AS cur_value,
       c.expires_at AS cur_expires_at
FROM touched t
LEFT JOIN LATERAL (
    SELECT op, value, expires_at FROM events e
    WHERE e.namespace = $1 AND e.key = t.key AND e.revision < t.first
    ORDER BY e.revision DESC LIMIT 1
) b ON true
LEFT JOIN current c ON c.namespace = $1 AND c.key = t.key
ORDER BY t.key
"""
GET_OUTCOME = """
SELECT fingerprint, status, result, expires_at FROM idempotency
WHERE namespace = $1 AND key = $2
"""
PUT_OUTCOME = """
INSERT INTO idempotency (namespace, key, fingerprint, status, result, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (namespace, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
    status = EXCLUDED.status, result = EXCLUDED.result, expires_at = EXCLUDED.expires_at
"""
PURGE_OUTCOMES = """
DELETE FROM idempotency WHERE (namespace, key) IN (
    SELECT namespace, key FROM idempotency WHERE expires_at <= $1 LIMIT $2)
"""
# Keys whose TTL has passed by $1, soonest first (the partial index current_by_expiry).
DUE_EXPIRIES = """
SELECT namespace, key, version FROM current
WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2
"""
# The change feed: the head and floor (one row, key NULL), then the events of revisions
# ($2, $2 + $3] whose key starts with $4, oldest first, in one statement (one snapshot).
CHANGES = """
WITH h AS (
    SELECT coalesce(max(revision), 0) AS head, coalesce(max(oldest_revision), 0) AS oldest
    FROM namespaces WHERE name = $1
)
SELECT h.head, h.oldest, NULL::bigint AS revision, NULL::text AS key, NULL::smallint AS op,
       NULL::bytea AS value, NULL::bigint AS at, NULL::bigint AS expires_at,
       NULL::text AS actor, NULL::text AS run, NULL::text AS agent, NULL::text AS reason
FROM h
UNION ALL
(SELECT NULL, NULL, e.revision, e.key, e.op, e.value, e.at, e.expires_at,
        e.actor, e.run, e.agent, e.reason
 FROM events e
 WHERE e.namespace = $1 AND e.revision > $2 AND e.revision - $3 <= $2
   AND e.revision <= (SELECT head FROM h) AND starts_with(e.key, $4)
 ORDER BY e.revision, e.key)
"""
# For each key written after the target revision: its event at the target and its current row.
# Keys not written since cannot differ, so they are never looked at.
# Each value is NULL where the key is absent: at the target (no set there, or expired by the
# target's commit time) or now (no row, or expired by $3, the clock's now).
ROLLBACK_DIFF = """
WITH changed AS (
    SELECT key FROM events WHERE namespace = $1 AND revision > $2 {key_filter}
    UNION
    -- Expired by now, without an expire event yet: it differs from its state at the target.
    SELECT key FROM current WHERE namespace = $1 AND expires_at <= $3 {key_filter}
), target AS (
    SELECT coalesce(
        (SELECT at FROM revisions WHERE namespace = $1 AND revision = $2), 0) AS at
)
SELECT ch.key,
       CASE WHEN t.op = 1 AND (t.expires_at IS NULL OR t.expires_at > (SELECT at FROM target))
            THEN t.value END AS then_value,
       t.expires_at AS then_expires_at,
       CASE WHEN c.expires_at IS NULL OR c.expires_at > $3 THEN c.value END AS cur_value,
       c.expires_at AS cur_expires_at
FROM changed ch
LEFT JOIN LATERAL (
    SELECT op, value, expires_at FROM events e
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
  AND (e.revision < k.revision OR (e.revision = k.revision AND k.op <> 1))
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
), rt AS (
    -- The commit time of the revision meant: TTLs are judged at it.
    SELECT coalesce((SELECT at FROM revisions WHERE namespace = $1
                     AND revision = (SELECT rev FROM r)), 0) AS rat
)"""
RESOLVE = "WITH" + _RESOLVED_CTES + " SELECT h.head, h.oldest, r.rev FROM h CROSS JOIN r"
# One key as of a revision or a time, with the resolution above, in one round trip.
GET_AT = (
    "WITH"
    + _RESOLVED_CTES
    + """
SELECT h.head, h.oldest, r.rev, rt.rat, e.op, e.value, e.version, e.created_revision,
       e.created_at, e.updated_at, e.expires_at
FROM h CROSS JOIN r CROSS JOIN rt
LEFT JOIN LATERAL (
    SELECT op, value, revision AS version, created_revision, created_at, at AS updated_at,
           expires_at
    FROM events WHERE namespace = $1 AND key = $4 AND revision <= r.rev
    ORDER BY revision DESC LIMIT 1
) e ON true
"""
)
# Several keys as of a revision or a time, in one statement: one row per key (at least one row,
# with the resolution, even for no keys).
GET_MANY_AT = (
    "WITH"
    + _RESOLVED_CTES
    + """
SELECT h.head, h.oldest, r.rev, rt.rat, k.key, e.op, e.value, e.version, e.created_revision,
       e.created_at, e.updated_at, e.expires_at
FROM h CROSS JOIN r CROSS JOIN rt
LEFT JOIN unnest($4::text[]) AS k(key) ON true
LEFT JOIN LATERAL (
    SELECT op, value, revision AS version, created_revision, created_at, at AS updated_at,
           expires_at
    FROM events WHERE namespace = $1 AND key = k.key AND revision <= r.rev
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
       NULL::bigint AS updated_at, NULL::bigint AS expires_at
FROM h CROSS JOIN r
UNION ALL
(SELECT 1, NULL, NULL, NULL, k.key, t.value, t.revision, t.created_revision, t.created_at, t.at,
        t.expires_at
FROM keys k
CROSS JOIN LATERAL (
    SELECT op, value, revision, created_revision, created_at, at, expires_at FROM events e
    WHERE e.namespace = $1 AND e.key = k.key AND e.revision <= (SELECT rev FROM r)
    ORDER BY e.revision DESC LIMIT 1
) t
WHERE k.key IS NOT NULL AND starts_with(k.key, $5) AND t.op = 1
  AND (t.expires_at IS NULL OR t.expires_at > (SELECT rat FROM rt))
LIMIT $6)
"""
)

# Store.dump: one page in (revision, key) order, on the index events_by_revision.
DUMP = """
SELECT revision, key, op, value, created_revision, created_at, at, expires_at,
       actor, run, agent, reason FROM events
WHERE namespace = $1 AND (revision, key) > ($2::bigint, $3::text)
ORDER BY revision, key LIMIT $4
"""
# Store.restore reads and writes one page of keys per statement. One index seek per key
# (LATERAL): a prepared statement's generic plan over ANY(array) scanned every event of the
# namespace per page once the table had grown (seconds per page at 30,000 events).
LAST_EVENTS_OF_KEYS = """
SELECT k.key, e.revision FROM unnest($2::text[]) AS k(key)
CROSS JOIN LATERAL (
    SELECT revision FROM events WHERE namespace = $1 AND key = k.key
    ORDER BY revision DESC LIMIT 1
) AS e
"""
# A restore: the owned rows it replaces (those of keys $2, or all with $3), and the bytes it
# frees from their tokens, whose rows are locked in sorted order first (migration 0006).
OWNED_IN = """
SELECT key, value, token_id FROM current
WHERE namespace = $1 AND token_id IS NOT NULL AND ($3 OR key = ANY ($2::text[]))
"""
LOCK_USAGE = """
SELECT token_id FROM token_usage WHERE token_id = ANY ($1::text[]) ORDER BY token_id FOR UPDATE
"""
FREE_USAGE = """
UPDATE token_usage tu SET live_bytes = greatest(0, tu.live_bytes - f.size)
FROM unnest($1::text[], $2::bigint[]) AS f(id, size) WHERE tu.token_id = f.id
"""
CURRENT_OF_KEYS = """
SELECT k.key, c.value, c.version, c.created_revision, c.created_at, c.expires_at
FROM unnest($2::text[]) AS k(key)
CROSS JOIN LATERAL (
    SELECT value, version, created_revision, created_at, expires_at FROM current
    WHERE namespace = $1 AND key = k.key
) AS c
"""
RESTORE_REVISIONS = """
INSERT INTO revisions (namespace, revision, at)
SELECT $1, r, a FROM unnest($2::bigint[], $3::bigint[]) AS t(r, a)
ON CONFLICT DO NOTHING
"""
UPSERT_CURRENT = """
INSERT INTO current (namespace, key, value, version, created_revision, created_at, updated_at,
                     expires_at)
SELECT $1, k, v, ver, cr, ca, ua, ea
FROM unnest($2::text[], $3::bytea[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
            $8::bigint[]) AS t(k, v, ver, cr, ca, ua, ea)
ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
    created_revision = excluded.created_revision, created_at = excluded.created_at,
    updated_at = excluded.updated_at, expires_at = excluded.expires_at,
    token_id = NULL  -- a restored value belongs to no token (README, per-token limits)
"""
RESTORE_TABLES = (
    ("events", "namespace"),
    ("revisions", "namespace"),
    ("current", "namespace"),
    ("namespaces", "name"),
)
