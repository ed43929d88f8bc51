-- Where a dataset's definition comes from: `file` (a definition in
-- `catalog/`, managed by `catalog sync`) or `api` (the publishing API; sync
-- never touches it). A retired dataset keeps its row as a tombstone: no data
-- is served (410), the metadata stays, with who retired it and when (RFC 3339).
ALTER TABLE datasets ADD COLUMN origin TEXT NOT NULL DEFAULT 'file';
ALTER TABLE datasets ADD COLUMN retired_at TEXT;
ALTER TABLE datasets ADD COLUMN retired_by TEXT;
