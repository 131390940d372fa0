-- A stream's identity. Every stream and camera gets a random identifier (32 lowercase
-- hex digits, 128 bits) when it is made; it never changes and is never reused. Names
-- change (rename) and come back (delete, then create again): whatever belongs to a
-- stream (its visibility, recording and ladder settings, its recordings, its viewer
-- links) is keyed by the identifier, so nothing of it answers under an old name.
ALTER TABLE streams ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE streams SET uid = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX streams_by_uid ON streams (uid);
ALTER TABLE sources ADD COLUMN uid TEXT NOT NULL DEFAULT '';
UPDATE sources SET uid = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX sources_by_uid ON sources (uid);

CREATE TEMP TABLE uid_by_name AS
    SELECT name, uid FROM streams UNION ALL SELECT name, uid FROM sources;

-- Settings of names that are no stream any more (left behind by a delete) go; the rest
-- are re-keyed by identity.
DELETE FROM recording_settings WHERE stream NOT IN (SELECT name FROM uid_by_name);
UPDATE recording_settings SET stream = (SELECT uid FROM uid_by_name WHERE name = stream);
ALTER TABLE recording_settings RENAME COLUMN stream TO stream_uid;
DELETE FROM ladder_settings WHERE stream NOT IN (SELECT name FROM uid_by_name);
UPDATE ladder_settings SET stream = (SELECT uid FROM uid_by_name WHERE name = stream);
ALTER TABLE ladder_settings RENAME COLUMN stream TO stream_uid;
DELETE FROM stream_visibility WHERE stream NOT IN (SELECT name FROM uid_by_name);
UPDATE stream_visibility SET stream = (SELECT uid FROM uid_by_name WHERE name = stream);
ALTER TABLE stream_visibility RENAME COLUMN stream TO stream_uid;

-- Recordings of deleted streams were reachable under the old name by anyone; they are
-- deleted (marked here; the start-up reconciliation removes the files, then the rows).
-- The files of the others keep their paths, which the index holds.
UPDATE dvr_segments SET deleting = 1, stream = ''
    WHERE stream NOT IN (SELECT name FROM uid_by_name);
UPDATE dvr_segments SET stream = (SELECT uid FROM uid_by_name WHERE name = stream)
    WHERE deleting = 0;
ALTER TABLE dvr_segments RENAME COLUMN stream TO stream_uid;
DROP TABLE uid_by_name;

-- Viewer links, listable and revocable. A link's token is "ID.EXPIRES.SIGNATURE" over
-- the stream's identity (auth::viewer); it opens the stream only while its row is here,
-- so revoking is deleting the row. AUTOINCREMENT: an id is never handed out twice.
CREATE TABLE viewer_links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_uid TEXT NOT NULL,
    created_at INTEGER NOT NULL,      -- seconds since the Unix epoch
    expires_at INTEGER NOT NULL,      -- seconds since the Unix epoch
    created_by TEXT NOT NULL          -- the audit log's actor
);
CREATE INDEX viewer_links_by_stream ON viewer_links (stream_uid);

-- What an API token may do: everything its administrator can ('admin'), or read
-- /metrics only ('metrics', for a Prometheus scraper).
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin'
    CHECK (scope IN ('admin', 'metrics'));
