-- Every change, who made it and what it changed (secrets masked). Ids are UUIDv7: time-ordered,
-- so the log pages and is pruned by id like the delivery log.
CREATE TABLE audit_log (
    id             uuid PRIMARY KEY,
    at             timestamptz NOT NULL,
    tenant_id      uuid,
    actor_kind     text NOT NULL,
    actor_id       text,
    actor_name     text,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text NOT NULL,
    changes        jsonb NOT NULL,
    request_id     text
);

CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id);
CREATE INDEX audit_log_resource_idx ON audit_log (resource_id, id);
