-- Tags (issue 13): auditors and admins label sessions (`incident-42`, `ticket:ops-7`), each
-- tag once per session, with who added it and when; listings and search filter by tag.
CREATE TABLE session_tags (
    session_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at_us INTEGER NOT NULL,
    PRIMARY KEY (session_id, tag)
);
CREATE INDEX session_tags_tag ON session_tags (tag);
