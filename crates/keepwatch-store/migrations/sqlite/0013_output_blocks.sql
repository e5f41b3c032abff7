-- Every line of output is indexed (issue 14), apart from command lines: output goes into
-- `output_blocks` (about 4 KiB of text of one channel each, zstd-compressed, with the
-- recording offset of each run of lines in `marks`) and `output_fts`, a contentless FTS5
-- index of their trigrams without positions (detail=none): it narrows a search to the blocks
-- that hold every trigram of the text, and the store confirms each match in the text itself.
-- `commands.output` stays as the command's output preview (its first 64 KiB), no longer
-- indexed: `commands_fts` covers command lines only.
DROP TABLE IF EXISTS commands_fts;
CREATE VIRTUAL TABLE commands_fts USING fts5 (
    command, content = 'commands', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO commands_fts (commands_fts) VALUES ('rebuild');

CREATE TABLE output_blocks (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    channel INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    start_offset_us INTEGER NOT NULL,
    end_offset_us INTEGER NOT NULL,
    text_len INTEGER NOT NULL,
    body BLOB NOT NULL,
    marks BLOB NOT NULL
);
CREATE INDEX output_blocks_session ON output_blocks (session_id, id);
-- The time span of each 1024 block ids, so a search bounded in time walks only the ids that
-- can hold such output (as `command_blocks` does for commands).
CREATE TABLE output_spans (
    span INTEGER PRIMARY KEY,
    min_at_us INTEGER NOT NULL,
    max_at_us INTEGER NOT NULL
);
CREATE VIRTUAL TABLE output_fts USING fts5 (
    text, content = '', contentless_delete = 1, detail = 'none', tokenize = 'trigram'
);

-- A hit in output names the command of its channel running then: found by its start.
CREATE INDEX commands_channel_start ON commands (session_id, channel, start_offset_us);

-- Output indexed before this migration is only each command's first 64 KiB: every ended
-- session is indexed again, from its recording, by the indexer's catch-up (and reported as
-- behind until then).
UPDATE index_state SET complete = 0 WHERE error IS NULL;
