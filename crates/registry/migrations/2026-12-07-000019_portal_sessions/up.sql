-- Console sessions of a tenant's portal. The link's one-time token and the session cookie are
-- stored as SHA-256 hashes only; a session ends at `expires_at`, when revoked, when its tenant
-- goes, or when the API key it acts with is revoked.
CREATE TABLE portal_sessions (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    api_key_id    uuid REFERENCES api_keys (id) ON DELETE CASCADE,
    read_only     boolean NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    session_hash  bytea UNIQUE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    opened_at     timestamptz,
    revoked_at    timestamptz
);

CREATE INDEX portal_sessions_tenant_idx ON portal_sessions (tenant_id);
CREATE INDEX portal_sessions_expires_idx ON portal_sessions (expires_at);
