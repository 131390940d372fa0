-- Content protection: a stream or camera whose HLS media is encrypted (AES-128, RFC
-- 8216bis §5.2) has a row here; `rotate_secs` is how often its key changes (NULL: only
-- when an administrator rotates it).
CREATE TABLE stream_protection (
    stream_uid TEXT PRIMARY KEY,
    rotate_secs INTEGER CHECK (rotate_secs IS NULL OR rotate_secs >= 60)
);

-- The content keys: 16 random bytes each, named by a key ID of 16 random bytes (in the
-- key's URI, and DASH's default_KID). A key is kept while its stream is: it may be asked
-- for again by a player that was given it.
CREATE TABLE content_keys (
    kid BLOB PRIMARY KEY CHECK (length(kid) = 16),
    stream_uid TEXT NOT NULL,
    key BLOB NOT NULL CHECK (length(key) = 16),
    created_ms INTEGER NOT NULL
);
CREATE INDEX content_keys_by_stream ON content_keys (stream_uid, created_ms);
