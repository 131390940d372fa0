-- Streams a publisher may push to. The stream key is stored only as a keyed hash
-- (HMAC-SHA256 under the `stream_key_secret` setting), so a lookup by key is an index
-- probe and the key itself is never stored.
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    key_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,      -- seconds since the Unix epoch
    key_rotated_at INTEGER NOT NULL   -- seconds since the Unix epoch
);

-- Appliance-wide settings, one value each.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Who changed what, newest last.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,              -- seconds since the Unix epoch
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
