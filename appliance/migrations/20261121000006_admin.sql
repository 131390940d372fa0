-- Administrators of the web UI and the JSON API. The password is kept only as an
-- argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,          -- seconds since the Unix epoch
    password_changed_at INTEGER NOT NULL  -- seconds since the Unix epoch
);

-- Signed-in browsers. The cookie carries 32 random bytes; only their SHA-256 is kept, so
-- a copy of the database does not hand out sessions.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,      -- seconds since the Unix epoch
    last_seen INTEGER NOT NULL,       -- seconds since the Unix epoch
    client TEXT NOT NULL,             -- the address it signed in from
    user_agent TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Where an audited action came from: a client address, or "cli".
ALTER TABLE audit_log ADD COLUMN client TEXT NOT NULL DEFAULT '';
