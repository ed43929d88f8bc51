-- A partner client's generation: carried in the tokens the gateway issues
-- (`gen` claim) and raised when the client is disabled or its secret is
-- rotated, so that every token issued before stops being accepted. Tokens
-- issued before this column existed carry none: they count as generation 0.
ALTER TABLE auth_clients ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
