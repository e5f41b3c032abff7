-- `output_fts` is given each output block's distinct trigrams as tokens (see
-- `src/sqlite/trigrams.rs`) instead of its text: FTS5's trigram tokenizer hashed every
-- trigram of every line into the index, most of them many times a block, which was most of
-- the indexer's time. The index holds the same pairs of block and trigram, so its size is
-- about the same.
DROP TABLE output_fts;
CREATE VIRTUAL TABLE output_fts USING fts5 (
    trigrams, content = '', contentless_delete = 1, detail = 'none', tokenize = 'ascii'
);

-- The blocks written before are given to the new index from their own text when the store
-- is next opened (`Fts5Index::finish_rebuild`), a batch a transaction, from `next_id` up to
-- `last_id`; the table goes when that is done. No recording is read again, so a session
-- whose recording is gone or unreadable keeps what was indexed of it.
CREATE TABLE output_fts_rebuild (next_id INTEGER NOT NULL, last_id INTEGER NOT NULL);
INSERT INTO output_fts_rebuild (next_id, last_id) SELECT 0, coalesce(max(id), -1) FROM output_blocks;
