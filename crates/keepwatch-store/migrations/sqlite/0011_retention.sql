-- Retention and legal holds (issue 13): how long sessions are kept after they end, by
-- scope (all, target, protocol, tag), and holds (session, person, target, tag) that keep
-- them whatever the policies say until released. Deletions leave a `session_deleted`
-- audit event (the tombstone), not a row here.
CREATE TABLE retention_policies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    keep_s INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at_us INTEGER NOT NULL
);
CREATE TABLE legal_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at_us INTEGER NOT NULL,
    released_by TEXT,
    released_at_us INTEGER,
    release_reason TEXT
);
