-- Idempotency keys of ingested events, shared by every publisher replica. A key is `pending`
-- from the moment a publisher claims it until its publish is confirmed (`done`); a pending claim
-- older than 30 s belonged to a publisher that died mid-publish and may be taken over.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,           -- the tenant id, or 'feed'
    key         text NOT NULL,
    event_id    uuid NOT NULL,
    state       text NOT NULL CONSTRAINT idempotency_keys_state CHECK (state IN ('pending', 'done')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
