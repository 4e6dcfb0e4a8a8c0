-- A deleted tenant's keys and webhooks go with its row; its delivery log (deliveries, attempts,
-- events, which hold no foreign key so the ledger's writes stay cheap) is deleted by the
-- retention task, in chunks, from this list. A tenant stays listed for `retention.deliveries`
-- after its deletion, so results still in flight when it went are deleted too.
CREATE TABLE deleted_tenants (
    tenant_id   uuid PRIMARY KEY,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
