-- API tokens (PRODUCT.md section 8); mirrors migrations/sqlite/0004_tokens.sql. A token is
-- "bw_<id>_<secret>"; only the SHA-256 of the secret is kept. The secret is 32 random bytes, so
-- a fast hash is enough: a slow KDF protects guessable passwords, and 256 random bits cannot be
-- guessed whatever the hash costs. Times are bigint microseconds since the Unix epoch (UTC).
CREATE TABLE tokens (
    id            text   COLLATE "C" PRIMARY KEY,
    name          text   NOT NULL,
    secret_hash   text   NOT NULL,
    grants        text   NOT NULL,
    created_at    bigint NOT NULL,
    expires_at    bigint,
    revoked_at    bigint,
    last_used_at  bigint
);
