-- Who may watch a stream (a pushed stream or a camera source, by name): everyone on the
-- LAN (no row, or private = 0), or only through a signed, expiring link (private = 1).
CREATE TABLE stream_visibility (
    stream TEXT PRIMARY KEY,
    private INTEGER NOT NULL DEFAULT 0
);
