-- The time span of each 1024 output block ids (as SQLite's `output_spans`): a search bounded
-- in time turns the bound into the range of block ids that can hold such output, instead of
-- walking every newer window. Each span covers its blocks from their first line's time to
-- their last's; rows only ever widen, so the range is a superset after any delete.
CREATE TABLE output_spans (
    span BIGINT PRIMARY KEY,
    min_at_us BIGINT NOT NULL,
    max_at_us BIGINT NOT NULL
);
INSERT INTO output_spans (span, min_at_us, max_at_us)
    SELECT id >> 10, min(at_us), max(at_us + end_offset_us - start_offset_us)
    FROM output_blocks GROUP BY id >> 10;
