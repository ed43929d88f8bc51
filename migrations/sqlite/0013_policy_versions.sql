-- Policies in the store (`policies_source = "store"`): every version of the
-- casbin model and rules an administrator accepted, never updated nor
-- deleted. The current policy is the version with the highest number; a
-- restore adds a new version with an older one's text. Times are Unix seconds.
CREATE TABLE policy_versions (
    number INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL
);
