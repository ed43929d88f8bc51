-- Every version of a dataset's rows, uploaded or imported: who, when, what
-- file (size and SHA-256), how many rows, and its status: `current`,
-- `previous`, or `failed` (a refused upload: nothing was published, so it
-- has no number). `table_name` holds the rows of the version while they are
-- kept; NULL once they are dropped.
CREATE TABLE dataset_versions (
    dataset_id TEXT NOT NULL,
    number BIGINT,
    created_at TEXT NOT NULL,
    created_by TEXT,
    rows BIGINT NOT NULL,
    bytes BIGINT,
    sha256 TEXT,
    file_name TEXT,
    status TEXT NOT NULL,
    table_name TEXT
);
CREATE UNIQUE INDEX dataset_versions_number ON dataset_versions (dataset_id, number);
CREATE INDEX dataset_versions_dataset ON dataset_versions (dataset_id, created_at);
