-- `hookwire listen` sessions: each relays one temporary webhook's deliveries to the CLI holding
-- it. A session whose stream stops being held expires; its webhook is then deleted.
CREATE TABLE listen_sessions (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_id  uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX listen_sessions_expires_idx ON listen_sessions (expires_at);
