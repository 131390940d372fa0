-- Bearer tokens for the JSON API, made by an administrator in the UI. The token is
-- "sbx_" and 32 random bytes; only the SHA-256 of the bytes is kept.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,  -- seconds since the Unix epoch
    last_used INTEGER,            -- seconds since the Unix epoch; NULL until first used
    UNIQUE (user_id, name)
);
