-- API tokens (PRODUCT.md section 8). A token is "bw_<id>_<secret>"; only the SHA-256 of the
-- secret is kept. The secret is 32 random bytes, so a fast hash is enough: a slow KDF protects
-- guessable passwords, and 256 random bits cannot be guessed whatever the hash costs.
-- grants: JSON text [{"namespaces": PATTERN, "access": "read"|"write"|"admin"}].
-- Times are integer microseconds since the Unix epoch (UTC).
CREATE TABLE tokens (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    secret_hash   TEXT    NOT NULL,
    grants        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) WITHOUT ROWID;
