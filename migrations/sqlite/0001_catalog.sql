-- The catalogue: one row per dataset, pointing at the table that holds its
-- current version. An import writes a new table and swaps the pointer, so
-- readers never see half a version.
CREATE TABLE datasets (
    id TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    definition_hash TEXT NOT NULL,
    source_hash TEXT NOT NULL,
    schema TEXT NOT NULL,
    table_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    record_count INTEGER NOT NULL,
    last_updated TEXT NOT NULL
);
