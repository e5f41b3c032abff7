-- Encryption at rest (issue 13): each recording's data key, wrapped by a key-encryption key
-- (`kek`: `vault`, the vault key's derived KEK, or `command`, an external program such as a
-- KMS client). Deleting the row destroys the key: the recording can never be read again
-- (crypto-shredding; retention deletes it in the same transaction as the tombstone).
CREATE TABLE data_keys (
    session_id TEXT PRIMARY KEY,
    wrapped BLOB NOT NULL,
    kek TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    wrapped_at_us INTEGER NOT NULL
);
