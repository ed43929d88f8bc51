-- A partner client's own rate limit and daily quota (`passerelle clients
-- set-limit`), over the limits of its class in the configuration. NULL: the
-- configured value applies; 0: no limit.
ALTER TABLE auth_clients ADD COLUMN limit_requests BIGINT;
ALTER TABLE auth_clients ADD COLUMN limit_per_seconds BIGINT;
ALTER TABLE auth_clients ADD COLUMN limit_burst BIGINT;
ALTER TABLE auth_clients ADD COLUMN limit_daily_rows BIGINT;
ALTER TABLE auth_clients ADD COLUMN limit_daily_bytes BIGINT;
