-- The PostgreSQL front end (issue 12). A postgres target names the database sessions use and
-- how the gateway reaches it: `tls` is disable, require or verify-full (then `tls_ca`, PEM,
-- or the system's roots). A person's SCRAM-SHA-256 verifier (PostgreSQL's text form) is what
-- the front end checks their Keepwatch password against, since SCRAM never shows the server
-- the password; it is written with the password, next to the argon2id hash.
ALTER TABLE targets ADD COLUMN database_name TEXT;
ALTER TABLE targets ADD COLUMN tls TEXT;
ALTER TABLE targets ADD COLUMN tls_ca TEXT;
ALTER TABLE people ADD COLUMN scram_verifier TEXT;
