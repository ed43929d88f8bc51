-- Tables that no longer hold a current version (replaced or removed
-- datasets, and imports still being written), dropped by the cleanup once
-- no reader can still use them: an import never drops a table a reader or
-- another instance with a stale catalogue may be reading. `retired_at` is in
-- seconds since the Unix epoch.
CREATE TABLE retired_tables (
    table_name TEXT PRIMARY KEY,
    dataset_id TEXT NOT NULL,
    retired_at BIGINT NOT NULL
);
