-- botwire_write: a whole group of sets and deletes to one namespace in ONE statement, so that a
-- group commit costs one round trip (and, outside an explicit transaction, one implicit
-- transaction with one WAL flush) instead of BEGIN, lock, a read and a write per key, COMMIT.
--
-- It takes the namespace row lock first (see the docstring of botwire_server/storage/postgres.py
-- for why revisions must follow commit order: the lock is held from "read head" to COMMIT, so the
-- order in which revisions are assigned is the order in which they become visible), then applies
-- the writes in array order, each as its own revision, with exactly the checks of the Python
-- store: not found (deletes), expected_version, the namespace byte limit, the daily write quota.
-- A refused write writes nothing and does not stop the others.
--
-- One row per write, in order: w_status 0 = written (w_revision, w_at, w_created: the key's
-- created revision, for a delete the one it had), 1 = version
-- conflict (w_detail = the current version, 0 if absent), 2 = key not found, 3 = namespace full
-- (w_detail = the size it would have had, w_detail2 = its size), 4 = quota spent (w_at = the
-- commit time it would have had). The store turns refusals into the same errors as before.
--
-- p_ops: 1 = set, 2 = delete. p_key_bytes: each key's UTF-8 length (counted by the caller, as
-- every other size is). p_expected: NULL where no expected_version was given. Times are
-- microseconds; p_now comes from the application's clock and is raised to the namespace's last
-- commit time, so commit times never go backwards within a namespace.
CREATE FUNCTION botwire_write(
    p_namespace text,
    p_now bigint,
    p_writes_per_day bigint,
    p_max_bytes bigint,
    p_ops smallint[],
    p_keys text[],
    p_values bytea[],
    p_key_bytes bigint[],
    p_expected bigint[]
) RETURNS TABLE (
    w_status smallint, w_revision bigint, w_at bigint, w_created bigint,
    w_detail bigint, w_detail2 bigint
) LANGUAGE plpgsql AS $$
DECLARE
    day_micros CONSTANT bigint := 86400000000;
    h record;
    old record;
    found_old boolean;
    n_written integer := 0;
    v_revision bigint;
    v_live_keys bigint;
    v_live_bytes bigint;
    v_last_at bigint;
    v_quota_day bigint;
    v_quota_used bigint;
    v_bytes bigint;
    v_keys bigint;
    v_at bigint;
    v_day bigint;
    v_used bigint;
    v_created bigint;
    v_created_at bigint;
BEGIN
    SELECT n.revision, n.live_keys, n.live_bytes, n.last_at, n.quota_day, n.quota_used
    INTO h FROM namespaces n WHERE n.name = p_namespace FOR UPDATE;
    IF NOT FOUND AND 1 = ANY (p_ops) THEN
        -- The first write to a namespace creates its row; only sets can succeed there.
        INSERT INTO namespaces (name) VALUES (p_namespace) ON CONFLICT DO NOTHING;
        SELECT n.revision, n.live_keys, n.live_bytes, n.last_at, n.quota_day, n.quota_used
        INTO h FROM namespaces n WHERE n.name = p_namespace FOR UPDATE;
    END IF;
    v_revision := coalesce(h.revision, 0);
    v_live_keys := coalesce(h.live_keys, 0);
    v_live_bytes := coalesce(h.live_bytes, 0);
    v_last_at := coalesce(h.last_at, 0);
    v_quota_day := coalesce(h.quota_day, -1);
    v_quota_used := coalesce(h.quota_used, 0);

    FOR i IN 1 .. coalesce(array_length(p_ops, 1), 0) LOOP
        -- Read after the lock is held: READ COMMITTED gives this statement a fresh snapshot.
        SELECT c.value, c.version, c.created_revision, c.created_at INTO old
        FROM current c WHERE c.namespace = p_namespace AND c.key = p_keys[i];
        found_old := FOUND;
        IF p_ops[i] = 2 AND NOT found_old THEN
            RETURN QUERY SELECT 2::smallint, NULL::bigint, NULL::bigint, NULL::bigint,
                NULL::bigint, NULL::bigint;
            CONTINUE;
        END IF;
        IF p_expected[i] IS NOT NULL
           AND p_expected[i] <> (CASE WHEN found_old THEN old.version ELSE 0 END) THEN
            RETURN QUERY SELECT 1::smallint, NULL::bigint, NULL::bigint, NULL::bigint,
                (CASE WHEN found_old THEN old.version ELSE 0 END)::bigint, NULL::bigint;
            CONTINUE;
        END IF;
        v_bytes := v_live_bytes;
        v_keys := v_live_keys;
        IF found_old THEN
            v_bytes := v_bytes - p_key_bytes[i] - octet_length(old.value);
            v_keys := v_keys - 1;
        END IF;
        IF p_ops[i] = 1 THEN
            v_bytes := v_bytes + p_key_bytes[i] + octet_length(p_values[i]);
            v_keys := v_keys + 1;
        END IF;
        IF p_max_bytes > 0 AND v_bytes > p_max_bytes AND v_bytes > v_live_bytes THEN
            RETURN QUERY SELECT 3::smallint, NULL::bigint, NULL::bigint, NULL::bigint,
                v_bytes, v_live_bytes;
            CONTINUE;
        END IF;
        v_at := greatest(p_now, v_last_at);
        v_day := div(v_at, day_micros);
        v_used := CASE WHEN v_quota_day = v_day THEN v_quota_used ELSE 0 END;
        IF p_writes_per_day > 0 AND v_used >= p_writes_per_day THEN
            RETURN QUERY SELECT 4::smallint, NULL::bigint, v_at, NULL::bigint,
                NULL::bigint, NULL::bigint;
            CONTINUE;
        END IF;

        v_revision := v_revision + 1;
        IF found_old AND p_ops[i] = 1 THEN
            v_created := old.created_revision;
            v_created_at := old.created_at;
        ELSE
            v_created := v_revision;
            v_created_at := v_at;
        END IF;
        INSERT INTO revisions (namespace, revision, at) VALUES (p_namespace, v_revision, v_at);
        INSERT INTO events (namespace, key, revision, op, value, created_revision, created_at, at)
        VALUES (p_namespace, p_keys[i], v_revision, p_ops[i], p_values[i], v_created,
                v_created_at, v_at);
        IF p_ops[i] = 1 THEN
            INSERT INTO current AS c
                (namespace, key, value, version, created_revision, created_at, updated_at)
            VALUES (p_namespace, p_keys[i], p_values[i], v_revision, v_created, v_created_at,
                    v_at)
            ON CONFLICT (namespace, key) DO UPDATE SET
                value = EXCLUDED.value, version = EXCLUDED.version,
                created_revision = EXCLUDED.created_revision,
                created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at;
        ELSE
            DELETE FROM current c WHERE c.namespace = p_namespace AND c.key = p_keys[i];
        END IF;
        v_live_bytes := v_bytes;
        v_live_keys := v_keys;
        v_last_at := v_at;
        v_quota_day := v_day;
        v_quota_used := v_used + 1;
        n_written := n_written + 1;
        RETURN QUERY SELECT 0::smallint, v_revision, v_at,
            CASE WHEN p_ops[i] = 1 THEN v_created ELSE old.created_revision END,
            NULL::bigint, NULL::bigint;
    END LOOP;

    IF n_written > 0 THEN
        UPDATE namespaces SET revision = v_revision, last_at = v_last_at,
            live_keys = v_live_keys, live_bytes = v_live_bytes,
            quota_day = v_quota_day, quota_used = v_quota_used
        WHERE name = p_namespace;
    END IF;
END
$$;
