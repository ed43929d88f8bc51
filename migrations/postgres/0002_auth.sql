-- Identity: the gateway's signing keys, partner clients and their API keys.
-- Secrets are never stored: client secrets as argon2 hashes, API keys as
-- SHA-256 of a high-entropy random secret.
CREATE TABLE auth_signing_keys (
    kid TEXT PRIMARY KEY,
    private_key_pem TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    retired_at TIMESTAMPTZ
);

CREATE TABLE auth_clients (
    id TEXT PRIMARY KEY,
    org TEXT NOT NULL,
    roles TEXT NOT NULL,
    datasets TEXT,
    secret_hash TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ
);

CREATE TABLE auth_api_keys (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES auth_clients (id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX auth_api_keys_client ON auth_api_keys (client_id);
