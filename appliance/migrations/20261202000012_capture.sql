-- Capture devices as sources: a source is an RTSP camera (`kind` 'rtsp', as before) or
-- a V4L2 capture device on this box (`kind` 'capture'), bound to the device's stable ID
-- (its /dev/v4l/by-id or by-path link name), never to its node, which changes at each
-- replug. A capture source asks for a size and frame rate (0: the device's best up to
-- 1920x1080 and 30 fps) and, for formats that are encoded here, a bitrate (0: one that
-- fits the size and rate). The service reports the format it chose (`detail`) and the
-- frames it lost (`dropped`), and 'unplugged' while the device is absent.
--
-- SQLite cannot change a CHECK constraint, so the table is made again. The trigger on
-- `streams` names `sources` in its body and would stop the rename; it goes first and
-- comes back after.
DROP TRIGGER streams_name_free;

CREATE TABLE sources_new (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL DEFAULT 'rtsp' CHECK (kind IN ('rtsp', 'capture')),
    -- 'rtsp':
    url TEXT NOT NULL DEFAULT '',     -- rtsp:// URL, no user info
    username TEXT NOT NULL DEFAULT '',
    password TEXT NOT NULL DEFAULT '',
    transport TEXT NOT NULL DEFAULT 'tcp' CHECK (transport IN ('tcp', 'udp')),
    -- 'capture':
    device TEXT NOT NULL DEFAULT '',  -- the device's stable ID
    width INTEGER NOT NULL DEFAULT 0 CHECK (width BETWEEN 0 AND 8192),   -- pixels
    height INTEGER NOT NULL DEFAULT 0 CHECK (height BETWEEN 0 AND 8192), -- pixels
    fps REAL NOT NULL DEFAULT 0 CHECK (fps BETWEEN 0 AND 240),           -- frames/s
    video_bitrate INTEGER NOT NULL DEFAULT 0 CHECK (video_bitrate >= 0), -- bits/s
    created_at INTEGER NOT NULL,      -- seconds since the Unix epoch
    -- Written by the running service:
    state TEXT NOT NULL DEFAULT 'connecting'
        CHECK (state IN ('connecting', 'live', 'retrying', 'failed', 'unplugged')),
    last_error TEXT NOT NULL DEFAULT '',
    bitrate INTEGER NOT NULL DEFAULT 0,   -- bits per second over the last few seconds
    live_since INTEGER,                   -- seconds since the Unix epoch; NULL unless live
    updated_at INTEGER NOT NULL DEFAULT 0, -- seconds since the Unix epoch
    detail TEXT NOT NULL DEFAULT '',      -- capture: the format chosen, the encoder's cost
    dropped INTEGER NOT NULL DEFAULT 0    -- capture: frames lost since the source started
);

INSERT INTO sources_new (id, uid, name, url, username, password, transport, created_at,
                         state, last_error, bitrate, live_since, updated_at)
    SELECT id, uid, name, url, username, password, transport, created_at,
           state, last_error, bitrate, live_since, updated_at
    FROM sources;
DROP TABLE sources;
ALTER TABLE sources_new RENAME TO sources;
CREATE UNIQUE INDEX sources_by_uid ON sources (uid);

-- A name is either a pushed stream or a source, never both.
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
