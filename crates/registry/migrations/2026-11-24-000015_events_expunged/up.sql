-- Erasing an event's payload (`POST /v1/admin/events/expunge`): the payload becomes JSON null
-- and `expunged_at` says when.
ALTER TABLE events ADD COLUMN expunged_at timestamptz;

-- Erasure by subject ("every event about person 123"); events without a subject cost nothing.
CREATE INDEX events_subject_idx ON events (subject) WHERE subject IS NOT NULL;

-- The erased events dispatchers are told of in the routing snapshot: few, found without a scan.
CREATE INDEX events_expunged_idx ON events (created_at) WHERE expunged_at IS NOT NULL;
