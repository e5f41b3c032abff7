-- Anchors (issue 11): every signed anchor a node writes to its file or syslog is kept here
-- too, so the cluster's anchors are in one place and `verify --stored-anchors` can check the
-- recordings and chains against them. They vouch for the recordings and for history that
-- only grows; they are no defence against whoever can rewrite this database (such a person
-- can delete rows here too): keep the file or syslog copies out of that reach.
CREATE TABLE anchors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    line TEXT NOT NULL
);
