-- The time span of each 1024 command ids (as SQLite's `command_blocks`): a search bounded in
-- time turns the bound into the range of command ids that can hold such commands and walks
-- only that, newest first, instead of walking back from the newest command until it meets
-- the bound (596,158 commands and 1 s for a rare text at 1M commands). Rows only ever widen,
-- so the range is a superset after any delete.
CREATE TABLE command_spans (
    span BIGINT PRIMARY KEY,
    min_at_us BIGINT NOT NULL,
    max_at_us BIGINT NOT NULL
);
INSERT INTO command_spans (span, min_at_us, max_at_us)
    SELECT id >> 10, min(at_us), max(at_us) FROM commands GROUP BY id >> 10;
