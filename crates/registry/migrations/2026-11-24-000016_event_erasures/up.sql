-- Erasure requests (`POST /v1/admin/events/expunge`), kept for 31 days: an event still on its way
-- to the log when its erasure was asked (the ledger queue holds a backlog while the registry or
-- PostgreSQL is down) is written erased, and its deliveries' response bodies are not kept.
CREATE TABLE event_erasures (
    id uuid PRIMARY KEY,
    -- Only this tenant's events; NULL: every tenant's and the feed's.
    tenant_id uuid,
    event_id uuid,
    -- Every event about it accepted before `requested_at`.
    subject text,
    requested_at timestamptz NOT NULL,
    CHECK ((event_id IS NULL) <> (subject IS NULL))
);

CREATE INDEX event_erasures_event_idx ON event_erasures (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX event_erasures_subject_idx ON event_erasures (subject) WHERE subject IS NOT NULL;
CREATE INDEX event_erasures_requested_idx ON event_erasures (requested_at);
