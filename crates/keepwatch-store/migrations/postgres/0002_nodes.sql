-- Node ownership (issue 11). Every session belongs to the gateway node that runs it: only
-- that node recovers it at start, unless the node's heartbeat lapses and a survivor claims
-- it. '' marks a session from before nodes existed; the first node that starts claims it.
ALTER TABLE sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_node_active ON sessions (node) WHERE status = 'active';
-- The nodes sharing this database. `instance` changes at every start, so a second process
-- started under the same node name takes the row over and the first sees it is fenced.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    started_at_us BIGINT NOT NULL,
    -- Where the other nodes reach this node's web listener (live control routed to the
    -- node that runs a session); '' until the listener is up.
    web_addr TEXT NOT NULL DEFAULT '',
    heartbeat_at_us BIGINT NOT NULL
);
