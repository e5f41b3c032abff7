-- Each output block's entry in `output_fts` also carries a token for its session's person and
-- one for its target (see `owner_tokens` in `src/sqlite/trigrams.rs`), so a search filtered
-- to a person or a target asks the index for their blocks only. Before, it walked every block
-- holding the text, newest first, and dropped those of other sessions against a set of the
-- person's block ids built for each round: at 10 GB of output that set alone was most of a
-- `--user` search's time.
DROP TABLE output_fts;
CREATE VIRTUAL TABLE output_fts USING fts5 (
    trigrams, content = '', contentless_delete = 1, detail = 'none', tokenize = 'ascii'
);

-- The blocks already stored are given to it again from their own text when the store is next
-- opened (`Fts5Index::finish_rebuild`), as after migration 0014, whose rebuild (if it had not
-- finished) this one replaces.
DROP TABLE IF EXISTS output_fts_rebuild;
CREATE TABLE output_fts_rebuild (next_id INTEGER NOT NULL, last_id INTEGER NOT NULL);
INSERT INTO output_fts_rebuild (next_id, last_id) SELECT 0, coalesce(max(id), -1) FROM output_blocks;
