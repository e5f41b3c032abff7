-- Keepwatch metadata schema (SQLite), version 1: the baseline.
--
-- This is, statement for statement, the schema keepwatch applied at every open before it had
-- migrations (`CREATE ... IF NOT EXISTS`). Every statement is idempotent, so the baseline
-- also runs cleanly over a database that schema created, and adopts it: the database opens
-- unchanged, with `_sqlx_migrations` saying it is at version 1. Never edit this file (sqlx
-- checks its checksum); later changes are new migrations beside it.
CREATE TABLE IF NOT EXISTS people (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT,
    created_at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS person_keys (
    person TEXT NOT NULL REFERENCES people(name) ON DELETE CASCADE,
    public_key TEXT NOT NULL
);
-- Whether a person is disabled (`keepwatch user disable`); no row means enabled.
CREATE TABLE IF NOT EXISTS person_state (
    name TEXT PRIMARY KEY REFERENCES people(name) ON DELETE CASCADE,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS targets (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    login TEXT NOT NULL,
    secret_kind TEXT NOT NULL,
    secret BLOB NOT NULL,
    host_key TEXT,
    trust_on_first_use INTEGER NOT NULL,
    on_recording_failure TEXT NOT NULL DEFAULT 'close',
    -- Comma-separated SSH algorithm names for reaching older devices; NULL = modern defaults.
    kex_algorithms TEXT,
    host_key_algorithms TEXT,
    ciphers TEXT,
    macs TEXT,
    created_at_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grants (
    person TEXT NOT NULL REFERENCES people(name) ON DELETE CASCADE,
    target TEXT NOT NULL REFERENCES targets(name) ON DELETE CASCADE,
    upload INTEGER NOT NULL DEFAULT 1,
    download INTEGER NOT NULL DEFAULT 1,
    max_file_size INTEGER,
    -- Newline-separated HOST:PORT patterns that ssh -L may reach.
    forward_to TEXT NOT NULL DEFAULT '',
    remote_forward INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (person, target)
);
-- Grant options added after `grants` existed. A table of their own, not new columns, because
-- the schema is applied with CREATE IF NOT EXISTS at every open and existing databases must
-- keep working; a grant without a row here has every option off.
CREATE TABLE IF NOT EXISTS grant_options (
    person TEXT NOT NULL,
    target TEXT NOT NULL,
    -- Largest file whose content is kept in the blob store; NULL keeps no copies.
    capture_max_bytes INTEGER,
    agent_forward INTEGER NOT NULL DEFAULT 0,
    record_tunnel_bytes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (person, target),
    FOREIGN KEY (person, target) REFERENCES grants (person, target) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    person TEXT NOT NULL,
    target TEXT NOT NULL,
    target_host TEXT NOT NULL,
    target_login TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    started_at_us INTEGER NOT NULL,
    ended_at_us INTEGER,
    chain_head BLOB,
    seal_seq INTEGER,
    seal_signature BLOB
);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions (started_at_us);
CREATE INDEX IF NOT EXISTS sessions_status ON sessions (status);
CREATE INDEX IF NOT EXISTS sessions_person ON sessions (person);
CREATE INDEX IF NOT EXISTS sessions_target ON sessions (target);
CREATE TABLE IF NOT EXISTS channels (
    session_id TEXT NOT NULL,
    channel INTEGER NOT NULL,
    kind TEXT NOT NULL,
    command TEXT,
    subsystem TEXT,
    pty_term TEXT,
    -- HOST:PORT of a port-forwarding tunnel.
    destination TEXT,
    opened_at_us INTEGER NOT NULL,
    closed_at_us INTEGER,
    exit_status INTEGER,
    PRIMARY KEY (session_id, channel)
);
CREATE TABLE IF NOT EXISTS transfers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    channel INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    -- sftp or scp
    protocol TEXT NOT NULL,
    path TEXT NOT NULL,
    -- upload (written on the target) or download (read from it)
    direction TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    size INTEGER,
    sha256 TEXT,
    complete INTEGER NOT NULL,
    -- start-end,start-end of the byte ranges moved
    ranges TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_session ON transfers (session_id);
CREATE INDEX IF NOT EXISTS transfers_sha256 ON transfers (sha256);
-- Whether a transfer's content was kept (captures/<session>/<transfer id> in the blob store).
CREATE TABLE IF NOT EXISTS transfer_captures (
    transfer_id INTEGER PRIMARY KEY REFERENCES transfers (id),
    -- captured or skipped
    status TEXT NOT NULL,
    -- bytes kept, when captured
    bytes INTEGER,
    -- why not, when skipped
    reason TEXT
);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    chain_head BLOB NOT NULL,
    sealed_at_us INTEGER NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    session_id TEXT,
    client_addr TEXT,
    detail TEXT NOT NULL
);
-- What people ran and saw, extracted from the recordings by the indexer (keepwatch-index).
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    -- 1-based, in the order the indexer completed them; `replay --at-command N`.
    seq INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    -- shell (typed at a prompt), exec (ssh host CMD), stdin (a shell without a terminal),
    -- file (an SFTP/SCP operation), screen (a snapshot of a full-screen program)
    kind TEXT NOT NULL,
    -- Wall clock of the start, unix microseconds (for --since/--until).
    at_us INTEGER NOT NULL,
    -- Offsets in the recording: microseconds since the session started.
    start_offset_us INTEGER NOT NULL,
    end_offset_us INTEGER,
    command TEXT NOT NULL,
    prompt TEXT NOT NULL,
    output TEXT NOT NULL,
    -- exact, inferred or unknown (typed but not echoed: the text is empty, not guessed)
    confidence TEXT NOT NULL,
    output_truncated INTEGER NOT NULL,
    full_screen INTEGER NOT NULL,
    UNIQUE (session_id, seq)
);
-- What was typed for a command when it is not what ran (`!!`, `!ech`), beside the command.
CREATE TABLE IF NOT EXISTS command_typed (
    id INTEGER PRIMARY KEY REFERENCES commands(id) ON DELETE CASCADE,
    typed TEXT NOT NULL
);
-- What a search tests for each match before it reads the (wide) command row: the filters'
-- columns, keyed by id so the matches of one stretch of time share pages.
CREATE INDEX IF NOT EXISTS commands_filter ON commands (id, session_id, at_us, kind);
-- Substring search (paths, flags) over commands and output; rows are added and removed
-- together with `commands` by the store (external content, no triggers).
CREATE VIRTUAL TABLE IF NOT EXISTS commands_fts USING fts5 (
    command, output, content = 'commands', content_rowid = 'id', tokenize = 'trigram'
);
-- The span of command start times in each block of 1024 command ids (`id >> 10`), so a
-- search bounded in time walks only the ids that can hold such commands instead of the whole
-- index newest-first. Ids follow the order commands were indexed, which is close to time
-- order; a session indexed late (reindex) only widens its blocks' spans, so the bounds stay
-- correct. Kept by `add_commands`; deletions leave spans as they were (still a superset).
CREATE TABLE IF NOT EXISTS command_blocks (
    block INTEGER PRIMARY KEY,
    min_at_us INTEGER NOT NULL,
    max_at_us INTEGER NOT NULL
);
-- Commands from the last block on that no span covers yet: all of them in a database
-- indexed before this table existed (once), at most one block's worth after that.
INSERT INTO command_blocks (block, min_at_us, max_at_us)
    SELECT id >> 10, min(at_us), max(at_us) FROM commands
    WHERE id >= (SELECT coalesce(max(block) << 10, 0) FROM command_blocks) GROUP BY id >> 10
    ON CONFLICT (block) DO UPDATE SET min_at_us = min(min_at_us, excluded.min_at_us),
    max_at_us = max(max_at_us, excluded.max_at_us);
-- How far the indexer got with each session.
CREATE TABLE IF NOT EXISTS index_state (
    session_id TEXT PRIMARY KEY,
    -- Every event of the sealed recording is indexed.
    complete INTEGER NOT NULL,
    commands INTEGER NOT NULL,
    error TEXT,
    updated_at_us INTEGER NOT NULL
);
-- How many bytes of a session's recording the indexer has read (the file header and whole
-- chunks), written in the same transaction as the rows they produced, so a reader that sees
-- N bytes indexed also sees every command completed within them. A table of its own, not a
-- column of index_state, because the schema is applied with CREATE IF NOT EXISTS at every
-- open; no row means nothing of a partial index is counted yet (Store::index_status).
CREATE TABLE IF NOT EXISTS index_progress (
    session_id TEXT PRIMARY KEY,
    bytes_indexed INTEGER NOT NULL
);
-- The audit trail's hash chain (keepwatch_recording::audit_chain), one row per audit event.
CREATE TABLE IF NOT EXISTS audit_chain (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    -- NULL when the writer had no signing key (then verify reports it unsigned).
    signature BLOB
);
-- API tokens (`keepwatch token create`): only the SHA-256 of the token is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at_us INTEGER NOT NULL,
    last_used_at_us INTEGER
);
-- Terminal keyframes written by the indexer: the screen of a channel at a point, and where in
-- the recording playback resumes after it, so seeking never replays from the start.
CREATE TABLE IF NOT EXISTS keyframes (
    session_id TEXT NOT NULL,
    channel INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    -- File offset of the chunk holding the event the screen includes last, and how many
    -- events of that chunk the screen already includes.
    chunk_offset INTEGER NOT NULL,
    skip_events INTEGER NOT NULL,
    cols INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    screen TEXT NOT NULL,
    PRIMARY KEY (session_id, channel, at_us)
);
-- The person an API token acts for (`keepwatch token create --person`). A table of its own,
-- not a column, because api_tokens existed before tokens named a person and the schema is
-- applied with CREATE IF NOT EXISTS at every open. A `user` token without a row here sees no
-- session at all; removing the token or the person removes the row.
CREATE TABLE IF NOT EXISTS token_people (
    token TEXT PRIMARY KEY REFERENCES api_tokens (name) ON DELETE CASCADE,
    person TEXT NOT NULL REFERENCES people (name) ON DELETE CASCADE
);
