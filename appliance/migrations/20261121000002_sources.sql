-- RTSP cameras streambox pulls from; each feeds the live stream of the same name.
-- The URL is stored without credentials; the password is kept as given because it must
-- be sent to the camera, and it is never logged or printed back in full.
CREATE TABLE sources (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,                -- rtsp:// URL, no user info
    username TEXT NOT NULL DEFAULT '',
    password TEXT NOT NULL DEFAULT '',
    transport TEXT NOT NULL CHECK (transport IN ('tcp', 'udp')),
    created_at INTEGER NOT NULL,      -- seconds since the Unix epoch
    -- Written by the running service:
    state TEXT NOT NULL DEFAULT 'connecting'
        CHECK (state IN ('connecting', 'live', 'retrying', 'failed')),
    last_error TEXT NOT NULL DEFAULT '',
    bitrate INTEGER NOT NULL DEFAULT 0,   -- bits per second over the last few seconds
    live_since INTEGER,                   -- seconds since the Unix epoch; NULL unless live
    updated_at INTEGER NOT NULL DEFAULT 0 -- seconds since the Unix epoch
);

-- A name is either a pushed stream or a camera source, never both.
CREATE TRIGGER sources_name_free BEFORE INSERT ON sources
WHEN EXISTS (SELECT 1 FROM streams WHERE name = NEW.name)
BEGIN
    SELECT RAISE(ABORT, 'name is taken by a stream');
END;

CREATE TRIGGER streams_name_free BEFORE INSERT ON streams
WHEN EXISTS (SELECT 1 FROM sources WHERE name = NEW.name)
BEGIN
    SELECT RAISE(ABORT, 'name is taken by a camera source');
END;
