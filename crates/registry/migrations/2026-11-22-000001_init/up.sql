-- Tenants, API keys, the event-type catalog, webhooks, events, deliveries and attempts.
-- Constraints are named: the API maps some violations to specific 409s by name.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT tenants_name_length CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- SHA-256 of the key. Keys are 256 random bits, so a fast hash is enough: nothing to brute-force.
    key_hash         bytea NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,
    -- The first characters of the key, to tell keys apart in listings.
    key_prefix       text NOT NULL,
    scopes           text[] NOT NULL,
    webhooks_enabled boolean NOT NULL DEFAULT true,
    max_webhooks     integer NOT NULL DEFAULT 10 CONSTRAINT api_keys_max_webhooks_positive CHECK (max_webhooks >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE event_types (
    value        text PRIMARY KEY,
    label        text NOT NULL,
    description  text NOT NULL DEFAULT '',
    schema       jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhooks (
    id                     uuid PRIMARY KEY,
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The key that created it: the per-key webhook limit counts these.
    api_key_id             uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    name                   text NOT NULL DEFAULT '',
    description            text NOT NULL DEFAULT '',
    url                    text NOT NULL,
    events                 text[] NOT NULL,
    channels               text[] NOT NULL DEFAULT '{}',
    is_active              boolean NOT NULL DEFAULT true,
    is_test                boolean NOT NULL DEFAULT false,
    header_name            text,
    prefix                 text,
    -- Sealed (hookwire_core::crypto), never plaintext.
    auth_secret_sealed     text,
    auth_secret_last4      text,
    secret_sealed          text NOT NULL,
    previous_secret_sealed text,
    previous_secret_expires_at timestamptz,
    headers                jsonb NOT NULL DEFAULT '{}',
    timeout_seconds        integer NOT NULL DEFAULT 30 CONSTRAINT webhooks_timeout_range CHECK (timeout_seconds BETWEEN 1 AND 60),
    retry_policy           jsonb NOT NULL,
    rate_limit_per_second  integer,
    failure_count          integer NOT NULL DEFAULT 0,
    last_triggered_at      timestamptz,
    last_success_at        timestamptz,
    last_failure_at        timestamptz,
    disabled_reason        text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    modified_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant_created_idx ON webhooks (tenant_id, created_at);
CREATE INDEX webhooks_api_key_idx ON webhooks (api_key_id);

CREATE TABLE events (
    id          uuid PRIMARY KEY,
    tenant_id   uuid,
    event_type  text NOT NULL,
    subject     text,
    channels    text[] NOT NULL DEFAULT '{}',
    payload     jsonb NOT NULL,
    is_test     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL
);

-- No foreign keys from the log to webhooks or events: a deleted webhook keeps its history, and
-- the ledger may learn of an attempt before it learns of the event (they travel separately).
CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    webhook_id       uuid NOT NULL,
    tenant_id        uuid NOT NULL,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    subject          text,
    status           text NOT NULL CONSTRAINT deliveries_status_known
                     CHECK (status IN ('pending', 'retrying', 'success', 'failed', 'exhausted')),
    attempts         integer NOT NULL DEFAULT 0,
    response_status  integer,
    response_body    text,
    error            text,
    duration_ms      integer,
    is_test          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    last_attempt_at  timestamptz,
    next_retry_at    timestamptz
);
CREATE INDEX deliveries_tenant_created_idx ON deliveries (tenant_id, created_at DESC);
CREATE INDEX deliveries_webhook_created_idx ON deliveries (webhook_id, created_at DESC);

CREATE TABLE delivery_attempts (
    delivery_id      uuid NOT NULL,
    attempt          integer NOT NULL,
    attempted_at     timestamptz NOT NULL,
    response_status  integer,
    error            text,
    duration_ms      integer NOT NULL,
    signature        text NOT NULL,
    CONSTRAINT delivery_attempts_pkey PRIMARY KEY (delivery_id, attempt)
);
