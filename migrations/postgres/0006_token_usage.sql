-- Per-token limits (issue 10, item 6). Mirrors migrations/sqlite/0006_token_usage.sql.
--
-- current.token_id: the token that last wrote the value (NULL: no token, the operator's
-- admin token, restored from an export, or before this migration); its bytes count against
-- that token until a set by another token, a delete or an expiry frees them.
ALTER TABLE current ADD COLUMN token_id text COLLATE "C";

-- One row per token that has written: writes on UTC day quota_day and the live bytes of the
-- current values it owns, across all namespaces.
CREATE TABLE token_usage (
    token_id    text   COLLATE "C" PRIMARY KEY,
    quota_day   bigint NOT NULL DEFAULT -1,
    writes      bigint NOT NULL DEFAULT 0,
    live_bytes  bigint NOT NULL DEFAULT 0
);

-- botwire_commit gains the per-token limits (p_token_writes_per_day, p_token_max_bytes; 0 =
-- unlimited) and checks them with p_actor_id, the writer's token per commit: status 6 = the
-- writer's live bytes would grow past its limit (w_detail: new total, w_detail2: old), 7 =
-- the writer has used its day's writes (w_at: the commit time). It keeps each token's writes
-- and bytes in token_usage, in the same transaction as the commit, so they are exact across
-- server processes. The other rules are those of migrations 0003 and 0005, unchanged.
--
-- Locking and deadlocks: one call handles a group of commits of ONE namespace. It takes that
-- namespace's row lock first, then, ONCE at the start, the token_usage rows of every token it
-- may change (the group's writers and the owners of the rows its keys hold: owners cannot
-- change meanwhile, as only a writer holding this namespace's lock rewrites these rows), in
-- sorted order (COLLATE "C": byte order, the same in every session). The store makes exactly
-- one call per transaction (a group of plain commits is one statement; a rollback, revert or
-- idempotent commit runs alone in its transaction, postgres.py _commit_groups), and nothing
-- else locks token_usage rows. So whoever waits for a token row holds one namespace lock and
-- token rows before it in the order; a wait for a namespace lock is only ever made holding
-- nothing; and waits between token rows follow the sorted order: no cycle can form.
DROP FUNCTION botwire_commit(text, bigint, bigint, bigint, integer[], smallint[], text[],
    bytea[], bigint[], bigint[], bigint[], bigint[], integer[], text[], text[], text[], text[],
    text[]);

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
    p_reason text[],
    p_token_writes_per_day bigint,
    p_token_max_bytes bigint
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
    o_owner text[];
    -- The usage rows of the tokens this call may change, locked at the start (see above),
    -- by position: t_ids sorted; t_bytes_d the current commit's change of each one's bytes.
    t_ids text[];
    t_day bigint[];
    t_writes bigint[];
    t_bytes bigint[];
    t_bytes_d bigint[];
    t_dirty boolean := false;
    k integer;
    w integer;
    v_tok_used bigint;
    v_tok_bytes bigint;
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

    -- Per-token usage: the writers of the group and the tokens owning the rows it touches,
    -- locked ONCE here, in sorted order (deadlock-free: see the comment at the top).
    SELECT coalesce(array_agg(t ORDER BY t), '{}') INTO t_ids FROM (
        SELECT a COLLATE "C" AS t FROM unnest(p_actor_id) AS a
        UNION
        SELECT cur.token_id FROM current cur
        WHERE cur.namespace = p_namespace AND cur.key = ANY (p_keys)
    ) ids WHERE t IS NOT NULL;
    FOR k IN 1 .. coalesce(array_length(t_ids, 1), 0) LOOP
        INSERT INTO token_usage (token_id) VALUES (t_ids[k]) ON CONFLICT DO NOTHING;
        SELECT tu.quota_day, tu.writes, tu.live_bytes INTO r FROM token_usage tu
        WHERE tu.token_id = t_ids[k] FOR UPDATE;
        t_day[k] := r.quota_day;
        t_writes[k] := r.writes;
        t_bytes[k] := r.live_bytes;
    END LOOP;

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
                   octet_length(cur.value) AS vbytes, cur.token_id
            INTO r FROM current cur WHERE cur.namespace = p_namespace AND cur.key = p_keys[j];
            o_found[j] := FOUND;
            o_alive[j] := FOUND AND (r.expires_at IS NULL OR v_at < r.expires_at);
            o_version[j] := CASE WHEN FOUND THEN r.version ELSE 0 END;
            o_bytes[j] := CASE WHEN FOUND THEN r.vbytes ELSE 0 END;
            o_created[j] := CASE WHEN FOUND THEN r.created_revision END;
            o_created_at[j] := CASE WHEN FOUND THEN r.created_at END;
            o_owner[j] := CASE WHEN FOUND THEN r.token_id END;
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
        w := array_position(t_ids, p_actor_id[c]);  -- NULL: no token
        FOR k IN 1 .. coalesce(array_length(t_ids, 1), 0) LOOP
            t_bytes_d[k] := 0;
        END LOOP;
        FOR j IN i_first .. i_last LOOP
            IF o_applies[j] THEN
                n_events := n_events + 1;
                IF o_found[j] THEN
                    v_bytes := v_bytes - p_key_bytes[j] - o_bytes[j];
                    v_keys := v_keys - 1;
                    -- Every owner is in t_ids: owners change only by this call's writers.
                    k := array_position(t_ids, o_owner[j]);
                    IF k IS NOT NULL THEN
                        t_bytes_d[k] := t_bytes_d[k] - p_key_bytes[j] - o_bytes[j];
                    END IF;
                END IF;
                IF p_ops[j] = 1 THEN
                    v_bytes := v_bytes + p_key_bytes[j] + octet_length(p_values[j]);
                    v_keys := v_keys + 1;
                    IF w IS NOT NULL THEN
                        t_bytes_d[w] := t_bytes_d[w] + p_key_bytes[j]
                            + octet_length(p_values[j]);
                    END IF;
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
        -- The writer's token: its live bytes (status 6), then its day's writes (status 7),
        -- after the namespace's own limits, as in base.plan_commit.
        IF w IS NOT NULL THEN
            v_tok_bytes := greatest(0, t_bytes[w] + t_bytes_d[w]);
            IF p_token_max_bytes > 0 AND v_tok_bytes > p_token_max_bytes
                    AND v_tok_bytes > t_bytes[w] THEN
                FOR j IN i_first .. i_last LOOP
                    RETURN QUERY SELECT c, 6::smallint, NULL::bigint, v_at, NULL::bigint,
                        NULL::bigint, v_tok_bytes, t_bytes[w];
                END LOOP;
                CONTINUE;
            END IF;
            v_tok_used := CASE WHEN t_day[w] = v_day THEN t_writes[w] ELSE 0 END;
            IF v_spend > 0 AND p_token_writes_per_day > 0
                    AND v_tok_used + v_spend > p_token_writes_per_day THEN
                FOR j IN i_first .. i_last LOOP
                    RETURN QUERY SELECT c, 7::smallint, NULL::bigint, v_at, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::bigint;
                END LOOP;
                CONTINUE;
            END IF;
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
                     expires_at, token_id)
                VALUES (p_namespace, p_keys[j], p_values[j], v_revision, v_new,
                        CASE WHEN o_alive[j] THEN o_created_at[j] ELSE v_at END, v_at, v_exp,
                        p_actor_id[c])
                ON CONFLICT (namespace, key) DO UPDATE SET
                    value = EXCLUDED.value, version = EXCLUDED.version,
                    created_revision = EXCLUDED.created_revision,
                    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
                    expires_at = EXCLUDED.expires_at, token_id = EXCLUDED.token_id;
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
        FOR k IN 1 .. coalesce(array_length(t_ids, 1), 0) LOOP
            IF t_bytes_d[k] <> 0 THEN
                t_bytes[k] := greatest(0, t_bytes[k] + t_bytes_d[k]);
                t_dirty := true;
            END IF;
        END LOOP;
        IF w IS NOT NULL AND v_spend > 0 THEN
            t_writes[w] := v_tok_used + v_spend;
            t_day[w] := v_day;
            t_dirty := true;
        END IF;
        wrote := true;
    END LOOP;

    IF t_dirty THEN
        UPDATE token_usage tu SET quota_day = u.d, writes = u.n, live_bytes = u.b
        FROM unnest(t_ids, t_day, t_writes, t_bytes) AS u(id, d, n, b)
        WHERE tu.token_id = u.id;
    END IF;

    IF wrote THEN
        UPDATE namespaces SET revision = v_revision, last_at = v_last_at,
            live_keys = v_live_keys, live_bytes = v_live_bytes,
            quota_day = v_quota_day, quota_used = v_quota_used
        WHERE name = p_namespace;
        PERFORM pg_notify('botwire_commits', v_revision::text || ' ' || p_namespace);
    END IF;
END
$$;
