-- Recording settings per stream (a pushed stream or a camera source, by name).
CREATE TABLE recording_settings (
    stream TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL DEFAULT 0,
    keep_secs INTEGER,                -- NULL: no age limit
    keep_bytes INTEGER                -- NULL: no size limit
);

-- The DVR index: one row per recorded CMAF segment of one track. A row is committed
-- only after its file (and the epoch's init segment) is durably in place; deletion first
-- sets `deleting`, then removes the file, then the row.
CREATE TABLE dvr_segments (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    track TEXT NOT NULL CHECK (track IN ('video', 'audio')),
    epoch TEXT NOT NULL,              -- one span with fixed codec parameters
    msn INTEGER NOT NULL,             -- media sequence number in the live stream
    start_wall_ms INTEGER NOT NULL,   -- wall-clock time of the first sample, ms since the Unix epoch
    start INTEGER NOT NULL,           -- decode time of the first sample, ticks of `timescale`
    timescale INTEGER NOT NULL,       -- ticks per second
    duration INTEGER NOT NULL,        -- ticks
    bytes INTEGER NOT NULL,
    path TEXT NOT NULL UNIQUE,        -- relative to the recordings directory
    init_path TEXT NOT NULL,          -- relative to the recordings directory
    codec TEXT NOT NULL,              -- RFC 6381 codecs value, e.g. avc1.4d401f
    width INTEGER NOT NULL,           -- video: pixels; audio: 0
    height INTEGER NOT NULL,          -- video: pixels; audio: 0
    channels INTEGER NOT NULL,        -- audio: channel count; video: 0
    deleting INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX dvr_segments_by_time ON dvr_segments (stream, start_wall_ms);
CREATE INDEX dvr_segments_by_msn ON dvr_segments (stream, track, msn);
