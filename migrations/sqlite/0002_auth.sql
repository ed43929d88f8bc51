-- Identity: the gateway's signing keys, partner clients and their API keys.
-- Secrets are never stored: client secrets as argon2 hashes, API keys as
-- SHA-256 of a high-entropy random secret.
CREATE TABLE auth_signing_keys (
    kid TEXT PRIMARY KEY,
    private_key_pem TEXT NOT NULL,
    created_at TEXT NOT NULL,
    retired_at TEXT
);

CREATE TABLE auth_clients (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    roles TEXT NOT NULL,
    datasets TEXT,
    secret_hash TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT
);

CREATE TABLE auth_api_keys (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES auth_clients (id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

CREATE INDEX auth_api_keys_client ON auth_api_keys (client_id);
