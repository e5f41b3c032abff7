-- Deny rules and row capture on database grants (issue 12): statement kinds and tables a
-- grant refuses (one per line), and how many rows of each result the recording keeps.
ALTER TABLE grant_options ADD COLUMN deny_statements TEXT NOT NULL DEFAULT '';
ALTER TABLE grant_options ADD COLUMN deny_tables TEXT NOT NULL DEFAULT '';
ALTER TABLE grant_options ADD COLUMN capture_rows INTEGER;
