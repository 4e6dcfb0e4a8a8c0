-- Named admin tokens: one per operator or automation, each revocable on its own, stored as
-- SHA-256 hashes. HOOKWIRE_ADMIN_TOKEN stays the bootstrap credential.
CREATE TABLE admin_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    token_prefix  text NOT NULL,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
