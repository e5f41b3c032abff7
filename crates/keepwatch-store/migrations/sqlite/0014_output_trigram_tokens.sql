-- `output_fts` is given each output block's distinct trigrams as tokens (see
-- `src/sqlite/trigrams.rs`) instead of its text: FTS5's trigram tokenizer hashed every
-- trigram of every line into the index, most of them many times a block, which was most of
-- the indexer's time. The index holds the same pairs of block and trigram, so its size is
-- about the same.
DROP TABLE output_fts;
CREATE VIRTUAL TABLE output_fts USING fts5 (
    trigrams, content = '', contentless_delete = 1, detail = 'none', tokenize = 'ascii'
);

-- The blocks written before are not in the new index: every ended session is indexed again
-- from its recording by the indexer's catch-up, and reported as behind until then. Their
-- old blocks go now, so nothing is left that the index does not cover.
DELETE FROM output_blocks;
DELETE FROM output_spans;
UPDATE index_state SET complete = 0 WHERE error IS NULL;
