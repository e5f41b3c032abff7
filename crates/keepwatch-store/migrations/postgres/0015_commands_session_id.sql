-- A search filtered by person, target, session or tag walks the newest command ids first in
-- windows, and reads in each only the named sessions' commands: by session and id.
CREATE INDEX commands_session_id ON commands (session_id, id);
