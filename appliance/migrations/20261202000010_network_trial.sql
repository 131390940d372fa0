-- The network change on trial, if any (one row at most): kept so that a restart of the
-- service or of the box in the middle of a trial still brings the previous settings
-- back. `previous` and `proposed` are JSON arrays of the interfaces' settings
-- (`previous` holds null for an interface that had no entry of streambox's).
CREATE TABLE network_trial (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    config_path TEXT NOT NULL,
    actor TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    previous TEXT NOT NULL,
    proposed TEXT NOT NULL
);
