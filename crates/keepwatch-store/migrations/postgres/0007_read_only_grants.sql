-- Read-only grants on database targets (issue 12): each statement is parsed, and one that
-- could write is refused before it reaches the target.
ALTER TABLE grant_options ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT false;
