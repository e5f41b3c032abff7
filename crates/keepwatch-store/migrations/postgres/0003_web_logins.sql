-- Console logins (issue 11): a browser session lives in the database, so any node sharing it
-- serves the person, a logout on one node ends it on all, and a restart logs no one out.
-- Only the SHA-256 of the cookie is kept. Never copied by `keepwatch migrate`.
CREATE TABLE web_logins (
    cookie_sha256 TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    role TEXT NOT NULL,
    -- The person's row as it was at login: removed and added again is someone else.
    person_created_at_us BIGINT NOT NULL,
    csrf TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    last_seen_at_us BIGINT NOT NULL
);
CREATE INDEX web_logins_person ON web_logins (person, last_seen_at_us);
