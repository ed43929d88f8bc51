-- Pages: staff sign-ins (OpenID Connect) and their sessions. Neither the
-- session id nor the sign-in's state is stored, only their SHA-256 (hex):
-- reading this table gives no session. Times are Unix seconds.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    org TEXT,
    -- JSON array of the caller's roles; JSON object of the ID token's claims.
    roles TEXT NOT NULL,
    claims TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

-- A sign-in under way, between /login and the provider's callback.
CREATE TABLE web_logins (
    state_hash TEXT PRIMARY KEY,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
