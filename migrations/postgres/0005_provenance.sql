-- Provenance, runs and idempotency (PRODUCT.md section 9). Mirrors
-- migrations/sqlite/0005_provenance.sql.
--
-- Every event stores who and why of its commit: actor (the token's name), run, agent and
-- reason; events written before this migration read them as NULL.
ALTER TABLE events ADD COLUMN actor text;
ALTER TABLE events ADD COLUMN run text COLLATE "C";
ALTER TABLE events ADD COLUMN agent text;
ALTER TABLE events ADD COLUMN reason text;
-- The run index: a run's events, oldest first, without scanning the namespace's log.
CREATE INDEX events_by_run ON events (namespace, run, revision, key) WHERE run IS NOT NULL;

-- The stored outcome of each idempotent write, inserted in the transaction of the write (the
-- store calls botwire_commit and then inserts here, in one transaction holding the
-- namespace's row lock, so replicas agree on each key). See the SQLite migration.
CREATE TABLE idempotency (
    namespace    text    COLLATE "C" NOT NULL,
    key          text    COLLATE "C" NOT NULL,
    fingerprint  text    NOT NULL,
    status       integer NOT NULL,
    result       bytea   NOT NULL,
    expires_at   bigint  NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);

-- botwire_commit gains the provenance of each commit (one element per commit, like p_cost):
-- p_actor, p_run, p_agent, p_reason are stored with every event of the commit; p_actor_id
-- (the actor's token id) reaches the commit so that a per-token rule (a quota) can be
-- checked here, under the namespace lock, beside the namespace's own quota. The rules are
-- those of migration 0003, unchanged.
DROP FUNCTION botwire_commit(text, bigint, bigint, bigint, integer[], smallint[], text[],
    bytea[], bigint[], bigint[], bigint[], bigint[], integer[]);

CREATE FUNCTION botwire_commit(
    p_namespace text,
    p_now bigint,
    p_writes_per_day bigint,
    p_max_bytes bigint,
    p_commit integer[],
    p_ops smallint[],
    p_keys text[],
    p_values bytea[],
    p_key_bytes bigint[],
    p_expected bigint[],
    p_ttl bigint[],
    p_expires bigint[],
    p_cost integer[],
    p_actor text[],
    p_actor_id text[],
    p_run text[],
    p_agent text[],
    p_reason text[]
) RETURNS TABLE (
    w_commit integer, w_status smallint, w_revision bigint, w_at bigint, w_created bigint,
    w_expires bigint, w_detail bigint, w_detail2 bigint
) LANGUAGE plpgsql AS $$
DECLARE
    day_micros CONSTANT bigint := 86400000000;
    h record;
    n integer := coalesce(array_length(p_ops, 1), 0);
    i integer := 1;
    j integer;
    i_first integer;
    i_last integer;
    c integer;
    n_conflicts integer;
    n_events integer;
    n_counted integer;
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
    v_spend bigint;
    v_new bigint;
    v_exp bigint;
    wrote boolean := false;
    -- Per write of the current commit: the key's stored row, whether it is alive (not
    -- expired) at the commit time, and whether the write changes anything.
    o_found boolean[];
    o_alive boolean[];
    o_version bigint[];
    o_bytes bigint[];
    o_created bigint[];
    o_created_at bigint[];
    o_applies boolean[];
    o_conflict boolean[];
    o_seen bigint[];
    r record;
BEGIN
    SELECT nn.revision, nn.live_keys, nn.live_bytes, nn.last_at, nn.quota_day, nn.quota_used
    INTO h FROM namespaces nn WHERE nn.name = p_namespace FOR UPDATE;
    IF NOT FOUND AND 1 = ANY (p_ops) THEN
        -- The first write to a namespace creates its row; only sets can succeed there.
        INSERT INTO namespaces (name) VALUES (p_namespace) ON CONFLICT DO NOTHING;
        SELECT nn.revision, nn.live_keys, nn.live_bytes, nn.last_at, nn.quota_day, nn.quota_used
        INTO h FROM namespaces nn WHERE nn.name = p_namespace FOR UPDATE;
    END IF;
    v_revision := coalesce(h.revision, 0);
    v_live_keys := coalesce(h.live_keys, 0);
    v_live_bytes := coalesce(h.live_bytes, 0);
    v_last_at := coalesce(h.last_at, 0);
    v_quota_day := coalesce(h.quota_day, -1);
    v_quota_used := coalesce(h.quota_used, 0);

    WHILE i <= n LOOP
        c := p_commit[i];
        i_first := i;
        i_last := i;
        WHILE i_last < n AND p_commit[i_last + 1] = c LOOP
            i_last := i_last + 1;
        END LOOP;
        i := i_last + 1;
        v_at := greatest(p_now, v_last_at);

        -- Conditions, against the state before this commit. The key's row is read after the
        -- namespace lock is held: READ COMMITTED gives each statement a fresh snapshot.
        n_conflicts := 0;
        FOR j IN i_first .. i_last LOOP
            SELECT cur.version, cur.created_revision, cur.created_at, cur.expires_at,
                   octet_length(cur.value) AS vbytes
            INTO r FROM current cur WHERE cur.namespace = p_namespace AND cur.key = p_keys[j];
            o_found[j] := FOUND;
            o_alive[j] := FOUND AND (r.expires_at IS NULL OR v_at < r.expires_at);
            o_version[j] := CASE WHEN FOUND THEN r.version ELSE 0 END;
            o_bytes[j] := CASE WHEN FOUND THEN r.vbytes ELSE 0 END;
            o_created[j] := CASE WHEN FOUND THEN r.created_revision END;
            o_created_at[j] := CASE WHEN FOUND THEN r.created_at END;
            o_seen[j] := CASE WHEN o_alive[j] THEN o_version[j] ELSE 0 END;
            o_conflict[j] := p_ops[j] <> 3 AND (
                (p_expected[j] IS NOT NULL AND p_expected[j] <> o_seen[j])
                OR (p_ops[j] = 2 AND o_seen[j] = 0));
            IF o_conflict[j] THEN
                n_conflicts := n_conflicts + 1;
            END IF;
            o_applies[j] := CASE p_ops[j]
                WHEN 4 THEN false
                WHEN 3 THEN o_found[j] AND NOT o_alive[j]
                    AND (p_expected[j] IS NULL OR p_expected[j] = o_version[j])
                ELSE true END;
        END LOOP;
        IF n_conflicts > 0 THEN
            FOR j IN i_first .. i_last LOOP
                RETURN QUERY SELECT c, (CASE WHEN o_conflict[j] THEN 1 ELSE 5 END)::smallint,
                    NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, o_seen[j],
                    NULL::bigint;
            END LOOP;
            CONTINUE;
        END IF;

        -- Size and quota of what the commit writes.
        v_bytes := v_live_bytes;
        v_keys := v_live_keys;
        n_events := 0;
        n_counted := 0;
        FOR j IN i_first .. i_last LOOP
            IF o_applies[j] THEN
                n_events := n_events + 1;
                IF o_found[j] THEN
                    v_bytes := v_bytes - p_key_bytes[j] - o_bytes[j];
                    v_keys := v_keys - 1;
                END IF;
                IF p_ops[j] = 1 THEN
                    v_bytes := v_bytes + p_key_bytes[j] + octet_length(p_values[j]);
                    v_keys := v_keys + 1;
                END IF;
                IF p_ops[j] IN (1, 2) THEN
                    n_counted := n_counted + 1;
                END IF;
            END IF;
        END LOOP;
        IF n_events = 0 THEN
            FOR j IN i_first .. i_last LOOP
                RETURN QUERY SELECT c, 0::smallint, v_revision, v_at,
                    (CASE WHEN o_alive[j] THEN o_created[j] ELSE 0 END)::bigint, NULL::bigint,
                    (CASE WHEN p_ops[j] = 3 THEN o_version[j] ELSE o_seen[j] END)::bigint,
                    NULL::bigint;
            END LOOP;
            CONTINUE;
        END IF;
        IF p_max_bytes > 0 AND v_bytes > p_max_bytes AND v_bytes > v_live_bytes THEN
            FOR j IN i_first .. i_last LOOP
                RETURN QUERY SELECT c, 3::smallint, NULL::bigint, NULL::bigint, NULL::bigint,
                    NULL::bigint, v_bytes, v_live_bytes;
            END LOOP;
            CONTINUE;
        END IF;
        v_spend := coalesce(p_cost[c], n_counted);
        v_day := div(v_at, day_micros);
        v_used := CASE WHEN v_quota_day = v_day THEN v_quota_used ELSE 0 END;
        IF v_spend > 0 AND p_writes_per_day > 0 AND v_used + v_spend > p_writes_per_day THEN
            FOR j IN i_first .. i_last LOOP
                RETURN QUERY SELECT c, 4::smallint, NULL::bigint, v_at, NULL::bigint,
                    NULL::bigint, NULL::bigint, NULL::bigint;
            END LOOP;
            CONTINUE;
        END IF;

        v_revision := v_revision + 1;
        INSERT INTO revisions (namespace, revision, at) VALUES (p_namespace, v_revision, v_at);
        FOR j IN i_first .. i_last LOOP
            IF NOT o_applies[j] THEN
                RETURN QUERY SELECT c, 0::smallint, v_revision - 1, v_at,
                    (CASE WHEN o_alive[j] THEN o_created[j] ELSE 0 END)::bigint, NULL::bigint,
                    (CASE WHEN p_ops[j] = 3 THEN o_version[j] ELSE o_seen[j] END)::bigint,
                    NULL::bigint;
                CONTINUE;
            END IF;
            IF p_ops[j] = 1 THEN
                IF o_alive[j] THEN
                    v_new := o_created[j];
                    INSERT INTO events (namespace, key, revision, op, value, created_revision,
                                        created_at, at, expires_at, actor, run, agent, reason)
                    VALUES (p_namespace, p_keys[j], v_revision, 1, p_values[j], o_created[j],
                            o_created_at[j], v_at,
                            coalesce(v_at + p_ttl[j], p_expires[j]),
                            p_actor[c], p_run[c], p_agent[c], p_reason[c]);
                ELSE
                    v_new := v_revision;
                    INSERT INTO events (namespace, key, revision, op, value, created_revision,
                                        created_at, at, expires_at, actor, run, agent, reason)
                    VALUES (p_namespace, p_keys[j], v_revision, 1, p_values[j], v_revision,
                            v_at, v_at, coalesce(v_at + p_ttl[j], p_expires[j]),
                            p_actor[c], p_run[c], p_agent[c], p_reason[c]);
                END IF;
                v_exp := coalesce(v_at + p_ttl[j], p_expires[j]);
                INSERT INTO current AS cur
                    (namespace, key, value, version, created_revision, created_at, updated_at,
                     expires_at)
                VALUES (p_namespace, p_keys[j], p_values[j], v_revision, v_new,
                        CASE WHEN o_alive[j] THEN o_created_at[j] ELSE v_at END, v_at, v_exp)
                ON CONFLICT (namespace, key) DO UPDATE SET
                    value = EXCLUDED.value, version = EXCLUDED.version,
                    created_revision = EXCLUDED.created_revision,
                    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
                    expires_at = EXCLUDED.expires_at;
                RETURN QUERY SELECT c, 0::smallint, v_revision, v_at, v_new, v_exp,
                    NULL::bigint, NULL::bigint;
            ELSE
                INSERT INTO events (namespace, key, revision, op, value, created_revision,
                                    created_at, at, actor, run, agent, reason)
                VALUES (p_namespace, p_keys[j], v_revision, p_ops[j], NULL, o_created[j],
                        o_created_at[j], v_at, p_actor[c], p_run[c], p_agent[c], p_reason[c]);
                DELETE FROM current cur WHERE cur.namespace = p_namespace
                    AND cur.key = p_keys[j];
                RETURN QUERY SELECT c, 0::smallint, v_revision, v_at, o_created[j],
                    NULL::bigint, NULL::bigint, NULL::bigint;
            END IF;
        END LOOP;
        v_live_bytes := v_bytes;
        v_live_keys := v_keys;
        v_last_at := v_at;
        IF v_spend > 0 THEN
            v_quota_day := v_day;
            v_quota_used := v_used + v_spend;
        END IF;
        wrote := true;
    END LOOP;

    IF wrote THEN
        UPDATE namespaces SET revision = v_revision, last_at = v_last_at,
            live_keys = v_live_keys, live_bytes = v_live_bytes,
            quota_day = v_quota_day, quota_used = v_quota_used
        WHERE name = p_namespace;
        PERFORM pg_notify('botwire_commits', v_revision::text || ' ' || p_namespace);
    END IF;
END
$$;
