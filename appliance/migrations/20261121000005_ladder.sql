-- The ABR ladder per stream (a pushed stream or a camera source, by name), in the syntax
-- of transcode::ladder ("720p,480p:900k,360p"; "source" for passthrough only).
CREATE TABLE ladder_settings (
    stream TEXT PRIMARY KEY,
    ladder TEXT NOT NULL
);
