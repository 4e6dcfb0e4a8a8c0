-- `Idempotency-Key` on the management API's POSTs: the first answer (2xx only) to a key, per
-- credential, for 24 hours. A row with no status is a request still running under the key.
CREATE TABLE api_idempotency_keys (
    -- SHA-256 of the credential the request carried (the API key, or the admin token).
    scope bytea NOT NULL,
    key text NOT NULL,
    -- SHA-256 of the method, the path with its query, and the body.
    fingerprint bytea NOT NULL,
    -- The request running under the key, so only it records or releases its claim (a claim left
    -- by a registry that died is taken over after a minute, by a new holder).
    holder uuid NOT NULL,
    status smallint,
    -- The answer's body, encrypted like every secret: it may hold a signing secret or an API key.
    body_sealed text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX api_idempotency_keys_created_idx ON api_idempotency_keys (created_at);
