-- Provenance, runs and idempotency (PRODUCT.md section 9).
--
-- Every event stores who and why of its commit: actor (the token's name), run, agent and
-- reason; events written before this migration read them as NULL. Adding nullable columns
-- keeps the table's commit order (no rebuild).
ALTER TABLE events ADD COLUMN actor TEXT;
ALTER TABLE events ADD COLUMN run TEXT;
ALTER TABLE events ADD COLUMN agent TEXT;
ALTER TABLE events ADD COLUMN reason TEXT;
-- The run index: a run's events, oldest first, without scanning the namespace's log. Partial:
-- writes without a run cost no index entry.
CREATE INDEX events_by_run ON events (namespace, run, revision, key) WHERE run IS NOT NULL;

-- The stored outcome of each idempotent write, written in the transaction of the write.
-- key: the Idempotency-Key as the service scoped it (the token's id, then the client's key);
-- fingerprint: a hash of the request; result: the encoded result the response is rendered
-- from; expires_at: microseconds, after which the key is free again (and purged).
CREATE TABLE idempotency (
    namespace    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    result       BLOB    NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
