-- The tamper-evident audit log. Each event stores the hash of the previous
-- one (see src/audit/event.rs for the canonical encoding), so a change,
-- insertion or deletion breaks the chain. Rows are never updated.
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY,           -- 1, 2, 3… one chain for all instances
    kind TEXT NOT NULL,                -- 'access' or 'completion'
    refers_to INTEGER,                 -- completion: seq of the access event it completes
    time_us INTEGER NOT NULL,          -- microseconds since the Unix epoch, UTC
    request_id TEXT NOT NULL,
    subject TEXT,                      -- NULL when anonymous
    org TEXT,
    roles TEXT NOT NULL,               -- JSON array of strings
    auth_method TEXT NOT NULL,
    client_id TEXT,
    token_id TEXT,
    ip TEXT,                           -- or 'hmac-sha256:<hex>' when IPs are hashed
    user_agent TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT,                        -- secrets replaced by REDACTED
    dataset TEXT,
    action TEXT NOT NULL,
    decision TEXT NOT NULL,            -- 'allow' or 'deny'
    rule TEXT,
    view_name TEXT,
    status INTEGER NOT NULL,
    rows_sent INTEGER,
    bytes_sent INTEGER,
    duration_ms REAL NOT NULL,
    complete INTEGER,                  -- completion: 1 the export ended, 0 it was cut off
    purpose TEXT,
    instance TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (time_us);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_dataset ON audit_events (dataset, seq);

-- Signed statements "the chain's event `seq` has hash `hash`": checkpoints
-- (periodic, at shutdown, on demand) detect a truncated tail; an anchor,
-- written by a purge, says which prev_hash the first kept event must carry.
CREATE TABLE audit_checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                -- 'checkpoint' or 'anchor'
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL            -- hex
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);
