-- Producer tokens: one per producing service or team, stored as SHA-256 hashes, each limited to
-- event-type patterns and tenants when set. Publishers learn them from the routing snapshot and
-- change notices.
CREATE TABLE producer_tokens (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    token_hash    bytea NOT NULL UNIQUE,
    token_prefix  text NOT NULL,
    event_types   text[],
    tenant_ids    uuid[],
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz
);
