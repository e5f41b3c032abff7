-- Every line of output is indexed (issue 14), apart from command lines: output goes into
-- `output_blocks` (about 4 KiB of text of one channel each, TOAST-compressed, with
-- the recording offset of each run of lines in `marks`) under a pg_trgm GIN index;
-- `commands.output` stays as the command's output preview (its first 64 KiB), no longer
-- indexed.
DROP INDEX IF EXISTS commands_output_trgm;

CREATE TABLE output_blocks (
    id BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL,
    channel BIGINT NOT NULL,
    at_us BIGINT NOT NULL,
    start_offset_us BIGINT NOT NULL,
    end_offset_us BIGINT NOT NULL,
    text_len BIGINT NOT NULL,
    text TEXT NOT NULL,
    marks BYTEA NOT NULL
);
CREATE INDEX output_blocks_session ON output_blocks (session_id, id);
CREATE INDEX output_blocks_text_trgm ON output_blocks USING gin (text gin_trgm_ops);

-- A hit in output names the command of its channel running then: found by its start.
CREATE INDEX commands_channel_start ON commands (session_id, channel, start_offset_us);

-- Output indexed before this migration is only each command's first 64 KiB: every ended
-- session is indexed again, from its recording, by the indexer's catch-up (and reported as
-- behind until then).
UPDATE index_state SET complete = false WHERE error IS NULL;
