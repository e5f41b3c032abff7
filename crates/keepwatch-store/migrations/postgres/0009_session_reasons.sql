-- Context (issue 13): a target can require a reason (a ticket id or a few words) before a
-- session opens, and each session keeps the reason given (also signed in its recording).
ALTER TABLE targets ADD COLUMN require_reason BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE sessions ADD COLUMN stated_reason TEXT;
