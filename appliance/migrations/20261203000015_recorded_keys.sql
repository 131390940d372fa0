-- The content key each recorded segment was encrypted with while live (its key ID, 16
-- bytes; NULL: it went out in the clear). Recordings stay clear on disk; playback of an
-- encrypted stream encrypts each segment again with this key when it is served.
ALTER TABLE dvr_segments ADD COLUMN kid BLOB CHECK (kid IS NULL OR length(kid) = 16);
