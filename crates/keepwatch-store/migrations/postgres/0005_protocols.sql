-- Protocols (issue 12): a target says which front end serves it, and a session which
-- protocol it ran. Every target and session before this was SSH.
ALTER TABLE targets ADD COLUMN protocol TEXT NOT NULL DEFAULT 'ssh';
ALTER TABLE sessions ADD COLUMN protocol TEXT NOT NULL DEFAULT 'ssh';
