-- What a publishing or classification event changed (JSON text: fields with
-- their old and new values and the reason given, or an upload's version,
-- rows, bytes and SHA-256); NULL for every other event. Hashed with the
-- version 2 encoding only when present (see src/audit/event.rs), so events
-- written before this column still verify.
ALTER TABLE audit_events ADD COLUMN changes TEXT;
